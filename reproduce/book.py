"""Write the book's pages from results/ and build the HTML with jupyter-book, offline.

The book is a function of results/: the claims page, the methods page and the environment
page are generated here from the run records, the executed notebooks and the declarations
(claims.toml, params.PRESETS); the ablation pages are the executed notebooks themselves.
Nothing here trains. Generated files live in book/generated/ and book/_toc.yml (not in git).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproduce import (claims, code_history, data, params, plan, registrations, results, run_pages, runs_index,
                       wording)

GENERATED = "generated"


@dataclass
class ExecutedNotebook:
    """An executed notebook under results/notebooks/<preset>/, and what papermill says of it."""
    preset: str
    ablation: str
    path: Path
    parameters: dict[str, Any]
    error: str | None

    @property
    def seeds(self) -> int:
        return int(self.parameters.get("seeds") or 0) or params.get_preset(self.preset).seeds

    @property
    def overrides(self) -> dict[str, Any]:
        given = {k: v for k, v in self.parameters.items() if k in params.BY_NAME}
        return {k: v for k, v in params.validate(given).items() if params.BY_NAME[k].affects_result}


def notebooks_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "notebooks"


def executed_notebooks(results_dir: str | Path) -> list[ExecutedNotebook]:
    """The executed notebooks of each preset, in the registry's order of their ablations (plan.ablations)."""
    found = []
    for preset in params.PRESETS:
        for ablation in plan.ablations():
            path = notebooks_dir(results_dir) / preset / f"{ablation}.ipynb"
            if path.exists():
                found.append(read_notebook(path, preset, ablation))
    return found


def read_notebook(path: Path, preset: str, ablation: str) -> ExecutedNotebook:
    """papermill marks a notebook whose cell raised; its error output names the exception."""
    try:
        notebook = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return ExecutedNotebook(preset, ablation, path, {}, f"unreadable notebook: {exc}")
    meta = notebook.get("metadata", {}).get("papermill", {})
    error = None
    if meta.get("exception") or _error_output(notebook):
        error = _error_output(notebook) or "a cell raised (see the notebook)"
    elif meta.get("end_time") is None:
        error = "did not finish (no end time recorded: interrupted or still running)"
    return ExecutedNotebook(preset, ablation, path, meta.get("parameters", {}), error)


def _error_output(notebook: dict[str, Any]) -> str | None:
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}"
    return None


# ----------------------------------------------------------------------------- outcomes

@dataclass
class PresetOutcomes:
    preset: str
    seeds: int
    outcomes: dict[str, claims.Outcome]
    versions: dict[str, list[claims.RegisteredVersion]] = field(default_factory=dict)
    forest: str = ""  # the forest plot's file, beside the claims page


def all_outcomes(results_dir: str | Path, executed: list[ExecutedNotebook]) -> list[PresetOutcomes]:
    """Each preset that has executed notebooks, with every claim's outcome at it. A claim whose
    notebook failed shows as failed, with the notebook's error, whatever records exist."""
    registry = plan.load_registry()
    shown = []
    for preset in dict.fromkeys(nb.preset for nb in executed):
        by_ablation = {nb.ablation: nb for nb in executed if nb.preset == preset}
        seeds = max((nb.seeds for nb in by_ablation.values()), default=params.get_preset(preset).seeds)
        outcomes = {}
        for claim in registry.values():
            notebook = by_ablation.get(claim.ablation)
            outcomes[claim.id] = _outcome(claim, preset, notebook, results_dir)
        claims.apply_holm(list(outcomes.values()))  # the registered claims are decided together
        versions = {claim.id: claims.registered_versions(claim, preset, seeds, results_dir)
                    for claim in registry.values() if claim.trains}
        shown.append(PresetOutcomes(preset, seeds, outcomes, {k: v for k, v in versions.items() if v}))
    return shown


def _outcome(claim: claims.Claim, preset: str, notebook: ExecutedNotebook | None,
             results_dir: str | Path) -> claims.Outcome:
    if claim.kind == "untested":
        return claims.evaluate(claim, preset, 1, results_dir)
    if notebook is None:
        return claims.Outcome(claim, "missing", f"no executed {claim.ablation} notebook for this preset")
    if notebook.error:
        return claims.Outcome(claim, "failed", f"notebook {claim.ablation}.ipynb failed: {notebook.error}")
    return claims.evaluate(claim, preset, notebook.seeds, results_dir, notebook.overrides)


# ----------------------------------------------------------------------------- pages

def claims_page(shown: list[PresetOutcomes], results_dir: str | Path = "results") -> str:
    lines = ["# The paper's claims, retested", "",
             "Each claim of the paper, the rule that decides it (registered in `reproduce/claims.toml` before its "
             "confirmatory runs: `reproduce/registration.toml` says how) and what the runs in `results/` say. "
             "Verdicts: **reproduced** (the paper's direction shown, and at least the registered size), **consistent "
             "with the paper** (the direction shown, smaller than the registered size), **not reproduced** (an effect "
             "of the registered size ruled out), **inconclusive** (neither; the registered design's smallest "
             "detectable effect says what it could have seen), **not tested here** (with the reason). The registered "
             "claims are decided together: each has two one-sided tests, and Holm's correction across all of them "
             "keeps the chance of any false verdict, of either kind, at 5%. Every verdict is a verdict on the proxy "
             "it was measured on (the 'tested on' column), not on the paper's ImageNet runs. A claim whose runs are "
             "missing, unfinished, failed or made by other training code shows the state of its runs instead: "
             "*missing*, *running*, *unmeasured* (final weights not measured), *stale* or *failed*.", ""]
    if not shown:
        lines += ["No executed notebooks under `results/notebooks/`: run `nox -s reproduce`.", ""]
    for group in shown:
        if group.forest:
            lines += [f"```{{figure}} {group.forest}", ":name: forest-" + group.preset, ":width: 100%", "",
                      f"Preset `{group.preset}`: every tested claim's effect with its 95% interval, on its own scale "
                      "(differences in points; ratios of iterations on a log axis), coloured by verdict; dashed: the "
                      "decision threshold; star: the paper's number where it gives one; hollow dot: a lower bound.",
                      "```", ""]
    lines += _registration_intro(shown)
    if len(shown) > 1:
        lines += _side_by_side(shown)
    for group in shown:
        lines += _glance_table(group)
    untested = [c for c in plan.load_registry().values() if c.kind == "untested"]
    if untested:
        lines += ["## Not tested here", "", "| | claim | the paper's number | why not |", "|---|---|---|---|"]
        lines += [f"| [{c.id}](#{c.id.lower()}) | {_cell(c.title)} | {_cell(c.paper_value)} | {_cell(c.reason)} |"
                  for c in untested]
        lines.append("")
    lines += exploratory_section(results_dir)
    lines += ["## The claims and their rules", ""]
    for claim in plan.load_registry().values():
        lines += _claim_section(claim, shown)
    return "\n".join(lines)


V1_VERDICTS = Path("v1") / "verdicts.json"  # under the results folder


def exploratory_section(results_dir: str | Path = "results") -> list[str]:
    """The first CPU study (v1): exploratory, kept as its own code judged it, beside the registered study."""
    path = Path(results_dir) / V1_VERDICTS
    if not path.exists():
        return []
    found = json.loads(path.read_text())
    lines = ["## The exploratory first study (v1)", "",
             f"{found['about']} Its verdicts, as the code of commit `{found['commit'][:12]}` gave them; its records "
             f"and executed notebooks are in `results/v1/`. They informed the design of the registered study, "
             "which decides the claims above; they decide nothing themselves.", "",
             "| claim | v1 verdict (exploratory) | measured then |", "|---|---|---|"]
    for claim_id, verdict in found["claims"].items():
        lines.append(f"| {claim_id} | {verdict_badge(verdict['verdict'])} | {_cell(verdict['summary'][:220])} |")
    return lines + [""]


def overview(results_dir: str | Path, shown: list[PresetOutcomes]) -> str:
    """The title page's summary (included by book/intro.md): when and by which code the results were
    made, on what, how long the grid took, and the claims at a glance."""
    frame = results.load_records(results_dir)
    used = {r for g in shown for o in g.outcomes.values() for r in o.run_ids}
    if frame.empty or not used:
        return "*No run records behind a verdict yet: run `nox -s reproduce`.*\n"
    behind = frame[frame["run_id"].isin(used)]
    commits = behind["git_commit"].dropna().value_counts()
    devices = ", ".join(sorted(set(behind["device"].dropna())))
    lines = [f"**Results as of {str(behind['finished_at'].max())[:10]}**: {len(behind)} runs, made by commit "
             + ", ".join(f"`{c[:12]}` ({n} runs)" for c, n in commits.items()) + f", on {devices}.", ""]
    for preset in dict.fromkeys(g.preset for g in shown):
        empty = [r for r in results.load_grid_records(results_dir) if r["from_empty"] and r["preset"] == preset]
        for r in empty:
            lines.append(f"- {_grid_scope(r)} trained from empty by the grid in **{r['wall_s'] / 60:.1f} min** "
                         f"({r['layout']}, {r['device']}, commit `{str(r['code'].get('commit'))[:12]}`; the "
                         "[environment page](generated/environment.md) has every grid)")
    lines += ["", "| claim | " + " | ".join(f"`{g.preset}`" for g in shown) + " |", "|---|" + "---|" * len(shown)]
    for claim in plan.load_registry().values():
        cells = [verdict_badge(g.outcomes[claim.id].verdict)
                 + (" on this proxy" if g.outcomes[claim.id].verdict in claims.DECIDED and claim.trains else "")
                 for g in shown]
        lines.append(f"| {{ref}}`{claim.id}: {_cell(claim.title)} <{claim.id.lower()}>` | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def _grid_scope(grid: dict[str, Any]) -> str:
    """What a grid trained: the whole preset, or the part of it that `--only`/`--seeds` chose (so a one-ablation
    rehearsal is never shown as the whole study)."""
    only, seeds = grid["options"].get("only"), grid["seeds"]
    if not only and seeds == params.get_preset(grid["preset"]).seeds:
        return f"preset `{grid['preset']}` (all {len(grid['runs'])} runs)"
    chosen = " ".join([f"--only {only}"] * bool(only) + [f"--seeds {seeds}"])
    return f"part of preset `{grid['preset']}` (`{chosen}`: {len(grid['runs'])} runs)"


def _side_by_side(shown: list[PresetOutcomes]) -> list[str]:
    """One row per claim, one column per preset: where the presets agree and where they do not."""
    lines = ["## The presets side by side", "", "| | claim | " + " | ".join(f"`{g.preset}`" for g in shown) + " |",
             "|---|---|" + "---|" * len(shown)]
    for claim in plan.load_registry().values():
        if claim.kind == "untested":
            continue
        cells = [f"{verdict_badge(g.outcomes[claim.id].verdict)}<br>{_cell(g.outcomes[claim.id].short)}" for g in shown]
        lines.append(f"| [{claim.id}](#{claim.id.lower()}) | {_cell(claim.title)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _registration_intro(shown: list[PresetOutcomes]) -> list[str]:
    """Which claims' rules changed after run records existed (from the registry's git history)."""
    if not shown:
        return []
    group = shown[0]
    changed = [claim_id for claim_id, versions in group.versions.items()
               if len(versions) > 1 and any(v.after_records for v in versions[1:])]
    if not group.versions:
        return ["*No git history here: the claims' registered versions cannot be shown.*", ""]
    if not changed:
        return ["Every rule is as first registered: none changed after run records existed.", ""]
    return [f"**Rules changed after run records existed: {', '.join(changed)}.** Each of these claims lists every "
            "registered version of its rule below, with its commit, date and the verdict it gives on today's "
            "records (from the git history of `reproduce/claims.toml`: a version is a change of kind, arms, "
            "metric, threshold, target or lr grid; 'after run records existed' means after run records were first "
            f"committed, {registrations.first_records_date() or 'never'}), latest last. The other rules are as "
            "first registered.", ""]


def _glance_table(group: PresetOutcomes) -> list[str]:
    preset = params.get_preset(group.preset)
    design = claims.registration()
    lines = [f"## Preset `{group.preset}`", "", f"*{preset.proxy}.*", "",
             "| | claim | verdict | measured here: effect [95% CI], n | tested on | smallest effect the registered "
             "seeds detect |", "|---|---|---|---|---|---|"]
    for ids, outcome in claims.merge_identical(group.outcomes.values()):
        if outcome.claim.kind == "untested":
            continue
        detectable = (design.get("detectable") or {}).get(outcome.claim.id) if outcome.claim.estimator else None
        links = ", ".join(f"[{i}](#{i.lower()})" for i in ids)
        tested = (wording.tested_on(group.preset, outcome.claim.network, dataset=False,
                                    conditions=outcome.claim.conditions) if outcome.claim.trains else "the built net")
        n = outcome.short + (f" of {outcome.claim.seeds} registered" if outcome.preliminary else "")
        lines.append(f"| {links} | {_cell(outcome.claim.title)} | {_verdict_cell(outcome, group.preset)} "
                     f"| {_cell(n)} | {_cell(tested)} | {wording.effect_size(outcome.claim, detectable)} |")
    return lines + [""] + _glance_notes(group) + [
        "Effects are in points of error (or of the claim's measure), the other arm minus the paper's arm: positive "
        "is the paper's direction. C1 and C12 are ratios of iterations (geometric means of the per-seed ratios). "
        "'Smallest effect the registered seeds detect': the effect, away from no effect or from the threshold, that "
        "the registered seeds would show with 80% power at the family's corrected level, with the registration's "
        "pessimistic spread (reproduce/registration.toml). Under each verdict: 'preliminary' where fewer seeds ran "
        "than were registered; whether it holds if the runs were trained on another machine (their errors move by "
        "the noise measured between two CPUs); 'caveat': the proxy departs from the paper in a way that bears on "
        "this claim (its section says how); 'lr tuned' or 'lr not tuned': whether each arm ran at its own learning "
        "rate, chosen on the pilot (the paper tuned it for Figure 1's nets), or both at the preset's.", ""]


def _glance_notes(group: PresetOutcomes) -> list[str]:
    """What the table's verdicts share (runs) and how they were decided together (Holm)."""
    tested = [o for o in group.outcomes.values() if o.verdict in claims.VERDICTS and o.interval is not None]
    if not tested:
        return []
    users: dict[str, list[str]] = {}
    for outcome in tested:
        for run_id in outcome.run_ids:
            users.setdefault(run_id, []).append(outcome.claim.id)
    shared = sorted({claim_id for ids in users.values() if len(ids) > 1 for claim_id in ids},
                    key=list(group.outcomes).index)
    most = max(users.values(), key=len)
    others = [claim_id for claim_id in shared if claim_id not in most]
    family = next((o.family for o in tested if o.adjusted is not None), 0)
    lines = [f"**Shared runs.** The {len(most)} claims {', '.join(most)} each use the same baseline run of every "
             "seed as an arm: one unlucky seed moves them together, so their verdicts are not independent evidence."
             + (f" {', '.join(others)} share runs among themselves too." if others else ""), ""]
    if family:
        lines += [f"**Decided together.** The registered claims' {family} one-sided hypotheses (each claim's "
                  "direction, and its size) form one family: Holm's step-down correction keeps the chance that any "
                  "verdict above is wrong - a direction shown that is not there, or a size ruled out that is - at "
                  "5%. A registered claim whose runs are not all here yet counts in the family at p = 1, so a verdict "
                  "given before the study is whole is held to at least the registered family's level. Each claim's "
                  "section gives its raw and adjusted p-values.", ""]
    return lines


def _verdict_cell(outcome: claims.Outcome, preset: str) -> str:
    """The verdict, then what qualifies it: on this proxy, preliminary, another machine, the caveat, the lrs."""
    claim = outcome.claim
    machine = ("holds on another machine" if outcome.machine.startswith("holds") else
               "could change on another machine" if outcome.machine.startswith("could") else "")
    notes = [note for note in (
        "on this proxy" if outcome.verdict in claims.DECIDED and claim.trains else "",
        "preliminary" if outcome.preliminary else "", machine,
        "caveat" if claim.notes.get("proxy_note") and claim.trains else "",
        _lr_flag(outcome, preset)) if note]
    return verdict_badge(outcome.verdict) + (f"<br>{', '.join(notes)}" if notes else "")


def _lr_flag(outcome: claims.Outcome, preset: str) -> str:
    if outcome.verdict == "not tested here":
        return ""
    return {True: "lr tuned", False: "lr not tuned", None: ""}[wording.lr_fairness(outcome.claim, preset).tuned]


def _claim_section(claim: claims.Claim, shown: list[PresetOutcomes]) -> list[str]:
    lines = [f"({claim.id.lower()})=", f"### {claim.id}: {claim.title}", "",
             f"> {claim.quote} (section {claim.section})", "", f"- **Paper:** {claim.paper_value}",
             f"- **Rule:** {wording.rule_text(claim)}"]
    lines += [f"- **{NOTE_TITLES.get(key, key)}:** {text}" for key, text in claim.notes.items()]
    if claim.ablation:
        lines.append(f"- **Notebook:** `experiments/{claim.ablation}.ipynb`")
    for group in shown[:1]:
        if claim.trains:
            lines.append(f"- **Learning rates ({group.preset}):** {wording.lr_fairness(claim, group.preset).text}")
    for group in shown:
        outcome = group.outcomes[claim.id]
        lines.append(f"- **{group.preset}:** {verdict_badge(outcome.verdict)}"
                     + (f" {outcome.summary}" if outcome.summary and claim.kind != "untested" else ""))
        if claim.trains and outcome.interval is not None:
            lines.append(f"  - tested on: {wording.proxy_text(claim, group.preset)}")
            if outcome.adjusted is not None:
                lines.append(f"  - {wording.holm_text(outcome)}")
        versions = group.versions.get(claim.id, [])
        if len(versions) > 1:
            lines.append("  - registered versions of the rule (git history of `reproduce/claims.toml`), "
                         "each judged on today's records:")
            lines += [f"    - `{v.commit[:12]}` {v.date[:10]}{' (after run records existed)' if v.after_records else ''}"
                      f": {verdict_badge(v.verdict)} {_cell(v.measured)}" for v in versions]
        for arm, by_seed in outcome.per_seed.items():
            values = ", ".join(f"seed {s}: {v:.4g}" for s, v in sorted(by_seed.items()))
            lines.append(f"  - {arm}: {values}")
        if outcome.run_ids:
            page = run_pages.page_name(claim.id, group.preset)
            lines.append(f"  - runs ([all {len(outcome.run_ids)}: settings, curves, device, versions, code and "
                         f"records]({run_pages.RUNS}/{page}.md)): "
                         + ", ".join(run_pages.link(claim.id, group.preset, r) for r in outcome.run_ids))
    return lines + [""]


NOTE_TITLES = {"target_note": "Target", "threshold_note": "Threshold", "lr_note": "Learning-rate sweep",
               "proxy_note": "On this project's proxies", "metric": "Metric"}


def methods_page() -> str:
    lines = ["# Methods: presets, proxies, deviations, statistics", "",
             "Every run is one call of `reproduce.train.run(config)`; the config is the preset's network, "
             "then the claim's conditions, then the arm, then the seed. Its hash names the record in "
             "`results/runs/`, so a finished run is never trained twice and two claims that need the same "
             "run share it.", "", "## Planning and training the runs", "",
             f"- `reproduce/plan.py` lists the distinct runs a preset needs, in a fixed priority order: the "
             f"baseline (the preset's AlexNet as the paper has it, shared by most claims), then the other arms of "
             f"the four named ablations ({', '.join(plan.NAMED_ABLATIONS)}), then the rest; the first seed of every arm "
             "before the second, so that a grid stopped early leaves whole pairs.",
             "- `python -m reproduce grid` (and `nox -s reproduce`, before the notebooks) trains them: in one "
             "process, with pools of worker processes (on the CPU, cores / cpu_threads of them; with CUDA, one pool "
             "per GPU whose runs share it by their FLOPs per step), or as submitit jobs on Slurm. Every run takes a "
             "lock, so two grids, or a grid and a notebook, never train one run twice; a killed worker's run resumes "
             "from its last epoch checkpoint with the same weights. With a time budget no run starts that its "
             "estimate says cannot finish (this grid's runs, earlier records on the device, or its FLOPs).",
             "- A run on the CPU uses a fixed number of threads (`cpu_threads`, 1 by default), whatever the number "
             "of workers: the thread count changes how reductions are split and so the last bits of the weights "
             "(measured here), and the number of workers must never change a result.",
             "- A record made by other training code is stale and trained again, unless that code change was "
             "declared numerically equivalent (`reproduce/equivalent_code.toml`): reference runs of every model "
             "family, retrained by both codes on one machine, one thread, with bit-identical weights (the "
             "evidence is in `results/equivalence/`, and a test retrains them from git).",
             "", "## A run's state", "",
             "One vocabulary, the same for the runner, the grid, the claims and this book (`results.RUN_STATES`); a "
             "claim whose runs are not all complete shows the state that most needs attention instead of a verdict.",
             "", "| state | meaning |", "|---|---|"]
    lines += [f"| {state} | {_cell(meaning)} |" for state, meaning in results.RUN_STATES.items()]
    lines += ["", "## What makes a record stale", "",
             "- Its **config hash** (the record's name) covers every parameter that decides a result "
             "(`params.hashed_config`): another value of any of them is another run. A parameter added later "
             "(`added_later`) is left out of the hash at its default, which reproduces what runs did before it "
             "existed, so adding one leaves every earlier run's id as it was.",
             f"- Its **training-code digest** covers the code of {', '.join(results.TRAINING_MODULES)} "
             "(`results.TRAINING_MODULES`), without comments, docstrings, blank lines or trailing spaces, read with "
             "Python's `ast` and `tokenize` and hashed as text (so every Python version gives the same digest): "
             "editing prose never makes a record stale; any change of code does, unless declared numerically "
             "equivalent with evidence. The environment page lists each digest behind the verdicts, with its "
             "first commit.",
             "", "## Data splits", "",
             "The learning-rate schedule watches the error on a validation split held out of the training images, "
             "as the paper's watched its validation error; the test images are only reported, never used to steer "
             "training. Held out: " + "; ".join(f"{name}: {count:,} images" for name, count in
                                                data.VALIDATION_IMAGES.items())
             + " (the last ones of Fashion-MNIST's 60,000 and CIFAR-10's 50,000 training images; an image folder's "
             "spread over its classes; a tenth of a smaller stand-in set). A training limit (`train_limit`) takes "
             "the first images of what remains. Every run record names the images of its three splits (`data`).",
             "", "## Presets", ""]
    for name, preset in params.PRESETS.items():
        lines += [f"### `{name}` ({preset.seeds} seeds)", "", f"{preset.proxy}.", "", "Deviations from the paper:", ""]
        lines += [f"- {d}" for d in preset.deviations] + [""]
        for network, config in preset.networks.items():
            shown = ", ".join(f"{k}={params.show_value(v)}" for k, v in config.items())
            lines.append(f"- network `{network}`: {shown}")
        lines.append("")
    noise = claims.registration().get("machine_noise_sd", math.nan)
    lines += ["## Statistics: the registered design", "",
              "- **Registered before the runs.** Each tested claim's rule - arms, metric, threshold on the paper's "
              "scale, estimator (named and versioned), crossing rule, learning rates and seeds - was committed with "
              "`reproduce/registration.toml` before any confirmatory run; a test checks that every confirmatory "
              "record was made by a commit that descends from that one. A rule changed later is a new registered "
              "version, shown with the verdict of each.",
              "- **Seeds.** The pilot's seeds (900-902) choose the design and are never a verdict's; the confirmatory "
              "runs take seeds from 100. Runs are paired by seed: both arms of a seed start from the same random state "
              "and see the same data order, crops and flips.",
              "- **Estimators.** `paired-mean-t/1`: the mean over seeds of (other arm - paper's arm), with its 95% "
              "Student t interval. `log-ratio-t/1` (C1, C12): the geometric mean of the per-seed ratios of iterations "
              "to a target training error, with a t interval on their logs. No bootstrap: over a handful of seeds a "
              "percentile bootstrap covers far less than 95% (a simulation in the tests checks every interval kind at "
              "n = 3 and 5).",
              "- **Crossings** (`smoothed-3/1`): a curve's iterations to the target are where the mean of 3 "
              "consecutive log points of training error first reaches it, interpolated between log points: no tie at "
              "one log point can decide a claim. A run that never gets there counts its last iteration, a bound: a "
              "slow arm's bound can still show the direction, never rule the size out; a fast arm's the reverse.",
              "- **Verdicts, decided together.** Each registered claim has two one-sided t tests: its direction (no "
              "effect or the reverse, against the paper's direction) and its size (at least the threshold). Holm's "
              "step-down correction across all of them keeps the family-wise error at 5%, whatever the verdicts "
              "assert: *reproduced* or *consistent with the paper* where the direction is shown (at least the "
              "threshold, or less), *not reproduced* where the size is ruled out and the direction is not shown, "
              "*inconclusive* otherwise. A registered claim not yet decided (its runs missing or running) counts "
              "in the family at p = 1: it comes last in Holm's order, so no verdict is given at a laxer level "
              "than the whole registered family's.",
              "- **Power.** The registration sizes each claim's seeds for 80% power against its threshold at the "
              "corrected level (Bonferroni's, which Holm's is never below), with a pessimistic spread: the 95% upper "
              "confidence bound of the sd of the pilot's paired differences. Where that is beyond the budget, the "
              "registration states the smallest effect the affordable seeds detect; the claims page shows it.",
              "- **Another machine.** Weights are bit-identical only on the same kind of machine (instruction set, GPU "
              "model, torch version, CPU threads): the v1 cpu preset rerun on an AVX-512 CPU matched none of the 72 "
              "runs made on an AVX2 one, final test errors a median 0.25 points apart. Each error claim's verdict is "
              "checked against that noise: would it stand if every run's error moved by it (the mean by about "
              f"2 x sqrt(2) x {100 * noise:.2f} / sqrt(n) points, the registration's noise)? A run's config hash leaves the device out, so one record stands "
              "for a run wherever it was made; to compare machines, train into another `--results-dir`.",
              "- A 'within' claim (C8, C16, C17) compares two measures of the same runs' final weights "
              "(`reproduce/analysis.py`: 10-crop and centre-crop error, nearest neighbours, conv1's kernels), "
              "paired by seed like a difference claim.",
              "- Overfitting (C4b, C7, C10) is the test error minus the error on (up to 5,000) training images "
              "seen as test images - centre view, no dropout - after the last epoch. The test error is measured on "
              "all 10,000 test images after the last epoch.", "",
              "## The defaults: the paper's recipe", "", "| parameter | default | allowed | meaning |",
              "|---|---|---|---|"]
    for param in params.PARAMS:
        lines.append(f"| `{param.name}` | {params.show_value(param.default)} | {_cell(param.allowed())} | "
                     f"{_cell(param.help)} |")
    return "\n".join(lines + [""] + faults_table()) + "\n"


def pilot_page(results_dir: str | Path, out: Path) -> str:
    """The pilot: the designs compared, what each showed, and the one the study registered (with its figure)."""
    from reproduce import figures, pilot

    folder = Path(results_dir) / pilot.PILOT_DIR
    design = claims.registration().get("design", {})
    lines = ["# The pilot: choosing the proxy", "",
             f"Runs on seeds kept for piloting ({', '.join(map(str, pilot.PILOT_SEEDS))}), in `results/pilot/`, made "
             "before the study was registered and never used in a verdict (`python -m reproduce pilot` trains them; "
             "its records name their code). A proxy can test the paper's claims only in their regime: final-error "
             "claims are about converged nets (the baseline within about a point of the same net trained twice as "
             "long), and the overfitting claims need overfitting to show (a training-test gap of several points "
             "without dropout or augmentation).", ""]
    results_found = pilot.design_results(folder)
    if not results_found:
        return "\n".join(lines + ["No pilot records here.", ""])
    lines += ["| design | seeds | baseline test error | twice as long, minus the baseline | overfitting gap: baseline / "
              "no dropout / no augmentation | sd of paired differences (df) | seconds per baseline run |",
              "|---|---|---|---|---|---|---|"]
    for r in results_found:
        lines.append(f"| {r.design.name}: {r.design.words} | {r.seeds} | {100 * r.baseline_test:.2f}% | "
                     f"{100 * r.longer_minus_baseline:+.2f} points | {100 * r.gaps['baseline']:.2f} / "
                     f"{100 * r.gaps['no dropout']:.2f} / {100 * r.gaps['no augmentation']:.2f} points | "
                     f"{_sd_cell(r.differences_sd, r.differences_df)} | {r.train_seconds:.0f} |")
    lines.append("")
    if design.get("why"):
        lines += [f"**Chosen: {design.get('chosen')}.** {design['why']}", ""]
    chosen = next((d for d in pilot.DESIGNS if d.name == design.get("chosen")), results_found[-1].design)
    figure = figures.pilot_curves(chosen.name, pilot.curves(folder, chosen))
    figure.savefig(out / "pilot-curves.png", dpi=110, bbox_inches="tight")
    figures.plt.close(figure)
    lines += ["```{figure} pilot-curves.png", ":width: 100%", "",
              f"Design {chosen.name}, each pilot seed: left, the baseline's validation error by epoch against the same "
              "net trained twice as long, and both test errors at the end; right, the error on training images and on "
              "test images at the end of each arm.", "```", ""]
    lines += confirmatory_regime_lines(results_dir, next(r for r in results_found if r.design == chosen))
    lines += ["## C1's learning rates", "",
              "Iterations until the four-layer net's training error first reaches 25% (the registered crossing rule), "
              "per pilot seed; '-': never within its epochs. The registry names each arm's lr from here.", "",
              "| arm | lr | iterations, per seed |", "|---|---|---|"]
    for (activation, lr), row in pilot.c1_table(folder).items():
        lines.append(f"| {activation} | {lr:g} | {', '.join('-' if i is None else f'{i:.0f}' for i in row)} |")
    lines += ["", "## C12's spread", "",
              f"C12 compares how fast bias 1 and bias 0 bring the training error to 50%: both arms on the chosen design, "
              f"{pilot.C12_EPOCHS} epochs (every epoch is seeded from the seed and the epoch, and the lr drops only "
              "after a plateau, so these are the first epochs of a full run). Iterations to 50%, per pilot seed:", "",
              "| arm | iterations, per seed |", "|---|---|"]
    for name, row in pilot.c12_table(folder).items():
        lines.append(f"| {name} | {', '.join('-' if i is None else f'{i:.0f}' for i in row)} |")
    return "\n".join(lines + [""] + registration_section(results_dir))


def _sd_cell(sd: float, df: int) -> str:
    return f"{100 * sd:.2f} points ({df})" if df > 0 else "- (one seed)"


def confirmatory_regime_lines(results_dir: str | Path, chosen: Any, preset: str = "cpu") -> list[str]:
    """The regime check on the confirmatory runs themselves: the baseline's mean test error against the pilot's
    twice-as-long runs, and the training-test gap with and without dropout (C10's two arms)."""
    import statistics

    from reproduce import pilot

    claim = plan.load_registry()["C10"]
    arms = {}
    for label, by_seed in plan.planned_runs(claim, preset, params.get_preset(preset).seeds).items():
        found = [r for r in (registrations.complete_record(results_dir, config) for config in by_seed.values()) if r]
        arms[label] = found
    baseline, no_dropout = arms[claim.paper_arm.name], arms[claim.other_arm.name]
    if not baseline:
        return ["**The confirmatory runs' regime**: no confirmatory baseline run here yet.", ""]
    test = statistics.mean(claims.final_test_error(r) for r in baseline)
    longer = chosen.baseline_test + chosen.longer_minus_baseline
    line = (f"**The confirmatory runs' regime**: the baseline's test error is {100 * test:.2f}% (mean of "
            f"{len(baseline)} confirmatory seeds), {100 * (test - longer):+.2f} points from the pilot's runs of twice "
            f"as long ({100 * longer:.2f}%, seeds {', '.join(map(str, pilot.PILOT_SEEDS))}); its training-test gap is "
            f"{100 * statistics.mean(claims.final_fit_gap(r) for r in baseline):.2f} points")
    if no_dropout:
        line += (f", and without dropout {100 * statistics.mean(claims.final_fit_gap(r) for r in no_dropout):.2f} "
                 f"points ({len(no_dropout)} seeds)")
    return [line + ".", ""]


def registration_section(results_dir: str | Path) -> list[str]:
    """What the registration fixed from the pilot: each claim's spread, seeds and detectable effect; and the
    check that every confirmatory record was made after it."""
    design = claims.registration()
    if not design:
        return ["## The registration", "", "No registration here (`reproduce/registration.toml`).", ""]
    registry = plan.load_registry()
    lines = ["## The registration", "",
             f"Committed before any confirmatory run (`reproduce/registration.toml`; its numbers follow from the "
             f"records above and from results/v1, which `tests/test_registration.py` recomputes). Each claim's seeds "
             f"give 80% power against its threshold, one-sided, at the level {design['alpha']:g} / "
             f"{2 * len([c for c in registry.values() if c.estimator])} (the family's Bonferroni level, which Holm's "
             "never falls below), with the spread's 95% upper confidence bound; where the budget "
             f"({design['budget_hours']:g} hours on 2 cores) affords fewer, the smallest effect they detect is the "
             "registered promise.", "",
             "| claim | threshold | spread sized on (sd, its upper bound, df) | seeds needed | registered seeds | "
             "smallest effect detected |", "|---|---|---|---|---|---|"]
    for claim_id, seeds in design["seeds"].items():
        claim = registry[claim_id]
        measure = claim.metric if claim.kind == "difference" else claim_id
        spread = design["spreads"][measure]
        scale = (lambda v: f"{v:.3f} (log)") if claim.kind == "ratio" else (lambda v: f"{100 * v:.2f} points")
        needed = design["seeds_needed"][claim_id]
        lines.append(f"| {{ref}}`{claim_id} <{claim_id.lower()}>` | {wording.effect_size(claim, claim.threshold)} "
                     f"| {_cell(spread['source'])}: {scale(spread['sd'])}, {scale(spread['upper'])}, {spread['df']} "
                     f"| {needed or 'more than 40'} | {seeds} | {wording.effect_size(claim, design['detectable'][claim_id])} |")
    lines.append("")
    since = registrations.registration_commit(Path(plan.REGISTRY_PATH).resolve().parent.parent)
    if since is not None:
        records = registrations.confirmatory_records(results_dir, design["preset"])
        problems = registrations.order_problems(Path(plan.REGISTRY_PATH).resolve().parent.parent, records)
        lines += [f"Registered in commit `{since[0][:10]}` ({since[1][:10]}). Of the {len(records)} confirmatory "
                  "records here, " + ("every one was made by a clean checkout of a commit that descends from it."
                                      if not problems else f"{len(problems)} were not: " + "; ".join(problems[:5])), ""]
    return lines


def faults_table() -> list[str]:
    """The faults and bad inputs tried, from the list tests/test_faults.py runs one test per case of."""
    from reproduce import faults

    lines = ["## Faults and bad inputs tried", "",
             f"Each of these {len(faults.CASES)} cases is an automated test on the CPU, run in CI "
             "(`tests/test_faults.py`, which checks that no case lacks a test); this table is generated from "
             "the same list (`reproduce/faults.py`).", "",
             "| kind | fault or input | what the user gets |", "|---|---|---|"]
    for kind in faults.KINDS:
        lines += [f"| {kind} | {_cell(case.fault)} | {_cell(case.outcome)} |"
                  for case in faults.CASES if case.kind == kind]
    return lines


def environment_page(results_dir: str | Path, shown: list[PresetOutcomes]) -> str:
    frame = results.load_records(results_dir)
    lines = ["# Environment and cost", "",
             "Where and with what the runs behind the verdicts were made, and what they cost. Times are "
             "training plus evaluation, summed over a claim's runs (a run shared by two claims counts "
             "for both). Every record is one row of "
             f"{{download}}`results/runs/index.csv <{runs_index.FILE_NAME}>` (run id, preset, network, the settings "
             "that tell it apart, seed, the claims it serves, state, test error, commit, device): grep it.", ""]
    lines += speed_section(results_dir) + d2l_section(results_dir) + grid_section(results_dir)
    if frame.empty:
        return "\n".join(lines + ["No run records yet.", ""])
    used = {rid for group in shown for o in group.outcomes.values() for rid in o.run_ids}
    lines += _cost_table(frame, shown) + _machines_table(frame[frame["run_id"].isin(used)])
    unreadable = frame[frame["status"] == "unreadable"]
    frame = frame[frame["status"] != "unreadable"]
    lines += _unreadable_list(unreadable)
    unused = frame[~frame["run_id"].isin(used)]
    digests = list(frame["training_sha256"]) if "training_sha256" in frame else []
    stale = [d for d in digests if not results.is_current_code(d)]
    declared = [d for d in digests if results.is_current_code(d) and d != results.training_digest()]
    lines += _provenance_table(frame[frame["run_id"].isin(used)])
    lines += ["## Records not behind any verdict", "",
              f"{len(unused)} of {len(frame)} records in `results/runs/` are not used by the claims above "
              "(other parameters or presets); "
              f"{len(stale)} were made by other training code than the current (stale); {len(declared)} by earlier "
              "training code declared numerically equivalent to the current (`reproduce/equivalent_code.toml`, "
              "with its evidence in `results/equivalence/`).", ""]
    return "\n".join(lines)


def _provenance_table(frame: Any) -> list[str]:
    """The code behind the verdicts' records: one row per training-code digest."""
    if frame.empty or "training_sha256" not in frame:
        return []
    lines = ["## The code that made them", "",
             "Records grouped by the digest of the training modules that made them (`results.TRAINING_MODULES`). "
             "'current': today's training code; 'declared equivalent': earlier code shown to give bit-identical "
             "weights (`reproduce/equivalent_code.toml`); 'stale': other code, so the claims using them say stale. "
             "'Clean' is judged on the source files alone (`reproduce/`, `pyproject.toml`), not on results/.", "",
             "| training code | records | state | first commit with it | commits named by the records | clean |",
             "|---|---|---|---|---|---|"]
    for digest, group in frame.groupby("training_sha256", dropna=False):
        state = ("current" if digest == results.training_digest() else
                 "declared equivalent" if results.is_current_code(digest) else "stale")
        first = code_history.first_commit_with(digest)
        first_text = f"`{first[0][:12]}` ({first[1][:10]})" if first else "not in this history"
        commits = ", ".join(f"`{c[:12]}`" for c in sorted(set(group["git_commit"].dropna())))
        clean = {True: "no", False: "yes"}
        dirty = sorted({clean.get(v, "unknown") for v in group["git_dirty"]})
        lines.append(f"| `{str(digest)[:12]}` | {len(group)} | {state} | {first_text} | {commits or 'none'} | "
                     f"{', '.join(dirty)} |")
    return lines + [""]


def grid_section(results_dir: str | Path) -> list[str]:
    """Wall time of each grid that trained: the whole preset's cost, per way of running it."""
    found = results.load_grid_records(results_dir)
    lines = ["## Wall time of the grid", "",
             "Each `python -m reproduce grid` (or `nox -s reproduce`) that trained something left a record in "
             "`results/grid/`: how the runs were spread (workers, threads per run), how many it trained and reused, "
             "and its wall time from start to last run. 'From empty' means it reused no run.", ""]
    if not found:
        return lines + ["No grid record yet.", ""]
    lines += ["| finished | preset | runs: trained, reused, not started, failed | how | wall time | from empty | device "
              "| commit |", "|---|---|---|---|---|---|---|---|"]
    for r in found:
        actions, states = r.get("actions", {}), r.get("states", {})
        how = r["layout"] if r["options"]["executor"] == "local" else f"submitit ({r['layout']})"
        commit = str(r["code"].get("commit"))[:10] + (" (dirty)" if r["code"].get("dirty") else "")
        lines.append(f"| {r['finished_at'][:16].replace('T', ' ')} | {r['preset']} ({r['seeds']} seeds) | "
                     f"{len(r['runs'])}: {actions.get('trained', 0)}, {actions.get('reused', 0)}, "
                     f"{actions.get('not started', 0)}, {states.get('failed', 0)} | {_cell(how)} | "
                     f"**{r['wall_s'] / 60:.1f} min** | {'yes' if r['from_empty'] else 'no'} | {_cell(r['device'])} | "
                     f"{commit} |")
    return lines + [""] + study_time_lines(results_dir)


def study_time_lines(results_dir: str | Path, preset: str = "cpu", cores: tuple[int, ...] = (2, 16)) -> list[str]:
    """How long the registered study takes from empty: on 2 cores from its runs' times here (two at a time),
    on more by scheduling the same runs, in the grid's order, on that many one-thread workers. Runs not yet
    here count at their network's median seconds per epoch among those that are (the pilot's, before any)."""
    from reproduce import estimates

    records = {r["run_id"]: r for r in registrations.confirmatory_records(results_dir, preset)}
    planned = plan.grid_plan(preset, params.get_preset(preset).seeds)
    per_epoch = _seconds_per_epoch(planned, records)
    seconds = [_run_seconds(records[run.run_id]) if run.run_id in records else per_epoch[run.network] * run.config["epochs"]
               for run in planned]
    times = ", ".join(f"**{estimates.wall_time(seconds, n) / 3600:.1f} hours on {n} cores**" for n in cores)
    done = sum(run.run_id in records for run in planned)
    source = (f"all measured here, two at a time on a 2-core machine ({_cell(str(next(iter(records.values()))['device']))})"
              if done == len(planned) else
              f"{done} of them measured here so far, two at a time on a 2-core machine; the other {len(planned) - done} "
              "at their network's median seconds per epoch among those (the pilot's, where none has run yet)")
    return [f"**The registered `{preset}` study from empty**: {len(planned)} runs, {sum(seconds) / 3600:.1f} hours of "
            f"one core each ({source}). Started in the grid's order on one-thread workers: {times} (more cores: "
            "estimated, each as fast as one of these two). Add the analyses of final weights, the notebooks and "
            "the book: minutes.", ""]


def _run_seconds(record: dict[str, Any]) -> float:
    return record["totals"]["train_time_s"] + record["totals"]["eval_time_s"]


def _seconds_per_epoch(planned: list[plan.PlannedRun], records: dict[str, dict[str, Any]]) -> dict[str, float]:
    """network -> median seconds per epoch of its runs here, else the registration's (the pilot's)."""
    import statistics

    measured = claims.registration().get("seconds_per_epoch", {})
    found = {}
    for network in {run.network for run in planned}:
        mine = [_run_seconds(records[r.run_id]) / r.config["epochs"] for r in planned
                if r.network == network and r.run_id in records]
        found[network] = statistics.median(mine) if mine else float(measured.get(network, math.nan))
    return found


def _unreadable_list(unreadable: Any) -> list[str]:
    """Records that do not parse: named, never dropped silently (a rerun trains their runs again)."""
    if unreadable.empty:
        return []
    lines = ["## Unreadable records", "",
             f"{len(unreadable)} file(s) in `results/runs/` do not parse; their runs count as failed, and "
             "rerunning trains them again:", ""]
    return lines + [f"- `{Path(path).name}`: {_cell(error)}" for path, error in
                    zip(unreadable["path"], unreadable["error"])] + [""]


def speed_section(results_dir: str | Path) -> list[str]:
    """The bench records: the trainer against the seeds' d2l loop, per device, network and layout."""
    from reproduce import bench

    found, problems = bench.load_bench_records(results_dir)
    lines = ["## Speed: the trainer against the seeds' d2l loop", "",
             "Measured by `nox -s bench` (records in `results/bench/`): training images per second of the "
             "project's trainer and of the d2l loop the seed notes use (a DataLoader doing per-image Resize + "
             "ToTensor, eager fp32), same network, data, batch and device, each loop in a fresh process; on a CPU "
             "the study's nets as the grid runs them (one thread per run, alone and two runs at once) and the "
             "paper's net with all threads; with `--against REV`, the trainer of another commit in the same run. "
             "The share is achieved FLOP/s over the peak: a GPU's datasheet peak, or on a CPU the fp32 "
             "matrix-multiply rate measured there with the runs' threads. Peak memory is the device memory "
             "allocated on a GPU, the process's peak resident memory on a CPU.", ""]
    lines += [f"- **{problem}**" for problem in problems]
    if not found:
        return lines + ["No bench records yet.", ""]
    lines += ["| device | network, batch | how it runs | d2l loop | trainer | ratio | over an earlier trainer | "
              "share of peak (d2l loop) | peak memory | against the targets | measured |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(found, key=lambda r: (r["device"], r["network"], (r.get("layout") or {}).get("key", ""))):
        how = r["trainer"]["how"]
        layout = (r.get("layout") or {}).get("words", "one run, all threads")
        earlier = (f"{r['against']['speedup']:.2f}x `{r['against']['revision']}`" if r.get("against") else "")
        d2l = f"{r['baseline_images_per_s']:,.1f}/s" if r.get("baseline_images_per_s") else "not run"
        ratio = f"**{r['ratio']:.2f}x**" if r.get("ratio") else ""
        base_memory = f" ({r['baseline_peak_memory'] / 1e9:.2f} GB)" if r.get("baseline_peak_memory") else ""
        lines.append(
            f"| {_cell(r['device'])} | {r['network']} ({r['model']}), {r['batch']} | {layout} "
            f"| {d2l} | {r['images_per_s']:,.1f}/s ({bench.describe_how(how)}) "
            f"| {ratio} | {earlier} | {_share_cell(r)} | {r['peak_memory'] / 1e9:.2f} GB{base_memory} "
            f"| {_cell(bench.target_verdict(r).replace('target ', ''))} "
            f"| {r['measured_at'][:10]}, torch {r['versions']['torch'].split('+')[0]} |")
    if not any(r["device_type"] == "cuda" for r in found):
        lines += ["", "No GPU record: the GPU targets are unmeasured."]
    return lines + [""]


def _share_cell(record: dict[str, Any]) -> str:
    if record.get("mfu_fault"):
        return "measurement fault: over 100% of the rate measured as the peak"
    if record.get("mfu") is None:
        return "no peak on file"
    return f"{record['mfu']:.1%}" + (f" ({record['baseline_mfu']:.1%})" if record.get("baseline_mfu") else "")


# The seed notes' own run of d2l's AlexNet on Fashion-MNIST (seed 003: d2l.train_ch6's last line), on their GPU.
D2L_REPORTED = {"train_loss": 0.327, "train_accuracy": 0.881, "test_accuracy": 0.885, "images_per_s": 4149.6}
D2L_AGREEMENT = 0.01  # "the same test accuracy": within about a point


def d2l_section(results_dir: str | Path, overrides: dict[str, Any] | None = None) -> list[str]:
    """The seeds' d2l recipe rerun by this project's trainer, beside the numbers the seed notes print
    (`overrides`: of the planned run's config, as a notebook's)."""
    lines = ["## The seeds' d2l AlexNet, rerun", "",
             "The seed notes train d2l's Fashion-MNIST AlexNet (one tower, no LRN, 224 px, conv1 padded by 1, fc6 "
             "from 6,400) with d2l's `train_ch6` (Xavier-uniform weights, plain SGD at lr 0.01 with no momentum, "
             "weight decay or schedule, batch 128, 10 epochs, no augmentation). The same recipe is one planned run "
             "of every preset that has it (`--network d2l`; the gpu preset's grid trains it first). Differences: "
             "55,000 training images, since 5,000 are held out as the validation split (d2l trains on 60,000), and "
             "the batch order is this project's.", ""]
    presets = [name for name, preset in params.PRESETS.items() if params.D2L_NETWORK in preset.networks]
    for preset in presets:
        config = params.resolve({**(overrides or {}), "results_dir": str(results_dir)}, preset=preset,
                                network=params.D2L_NETWORK)
        found = results.run_state(results_dir, config)
        if found.state != "complete":
            lines += [f"Preset `{preset}`: not run yet ({found.state}). It is the first run of "
                      "`bash scripts/gpu_session.sh` on a lent GPU; on this CPU 10 epochs at 224 px take hours.", ""]
            continue
        lines += _d2l_table(preset, found.record)
    return lines


def _d2l_table(preset: str, record: dict[str, Any]) -> list[str]:
    last = record["epochs"][-1]
    speeds = sorted(e["images_per_s"] for e in record["epochs"])
    ours = {"train_loss": last["train_loss"], "train_accuracy": 1 - last["train_error"],
            "test_accuracy": 1 - last["test_top1_error"], "images_per_s": speeds[len(speeds) // 2]}
    rows = [("training loss, last epoch", "train_loss", "{:.3f}"), ("training accuracy, last epoch (dropout on)",
            "train_accuracy", "{:.3f}"), ("test accuracy", "test_accuracy", "{:.3f}"),
            ("training images/s (median epoch)", "images_per_s", "{:,.0f}")]
    gap = ours["test_accuracy"] - D2L_REPORTED["test_accuracy"]
    agrees = "the same test accuracy within a point" if abs(gap) <= D2L_AGREEMENT else "a different test accuracy"
    lines = [f"Preset `{preset}`, run `{record['run_id']}` (`results/runs/`) on {_cell(record['device'])}, "
             f"torch {record['versions']['torch']}: **{agrees}** ({100 * gap:+.1f} points).", "",
             "| | d2l (seed notes, their GPU) | this project |", "|---|---|---|"]
    lines += [f"| {label} | {form.format(D2L_REPORTED[key])} | {form.format(ours[key])} |" for label, key, form in rows]
    return lines + [""]


def _cost_table(frame: Any, shown: list[PresetOutcomes]) -> list[str]:
    seconds = dict(zip(frame["run_id"], frame.get("total_train_time_s", 0).fillna(0)
                       + frame.get("total_eval_time_s", 0).fillna(0)))
    lines = ["## Wall time per claim", "", "| preset | claim | runs | training + evaluation |", "|---|---|---|---|"]
    for group in shown:
        for outcome in group.outcomes.values():
            if outcome.run_ids:
                spent = sum(seconds.get(r, 0.0) for r in outcome.run_ids)
                lines.append(f"| {group.preset} | {outcome.claim.id} | {len(outcome.run_ids)} | {spent / 60:.1f} min |")
        distinct = {r for o in group.outcomes.values() for r in o.run_ids}
        total = sum(seconds.get(r, 0.0) for r in distinct)
        lines.append(f"| {group.preset} | all (distinct runs) | {len(distinct)} | {total / 60:.1f} min |")
    return lines + [""]


def _machines_table(frame: Any) -> list[str]:
    lines = ["## Machines and versions", "", "| device | torch | torchvision | python | runs | commit |",
             "|---|---|---|---|---|---|"]
    if frame.empty:
        return lines + [""]
    versions = frame["versions"].apply(lambda v: v or {})
    keyed = frame.assign(torch=versions.apply(lambda v: v.get("torch")),
                         torchvision=versions.apply(lambda v: v.get("torchvision")),
                         python=versions.apply(lambda v: v.get("python")))
    for key, group in keyed.groupby(["device", "torch", "torchvision", "python"], dropna=False):
        commits = ", ".join(sorted({f"{str(c)[:10]}{' (dirty)' if d else ''}" for c, d in
                                    zip(group["git_commit"], group["git_dirty"])}))
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(group)} | {commits} |")
    return lines + [""]


def verdict_badge(verdict: str) -> str:
    css = "v-" + verdict.split()[0].replace("not", "no")
    if verdict == "not tested here":
        css = "v-untested"
    return f'<span class="verdict {css}">{verdict}</span>'


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------- assembling

def write_sources(results_dir: str | Path, book_dir: str | Path) -> Path:
    """Generate the pages and the table of contents; returns the book directory."""
    book = Path(book_dir)
    out = book / GENERATED
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    executed = executed_notebooks(results_dir)
    shown = all_outcomes(results_dir, executed)
    for group in shown:
        group.forest = _save_forest(group, out)
    pages = run_pages.write(results_dir, shown, out / run_pages.RUNS)
    if results.runs_dir(results_dir).exists():
        shutil.copyfile(runs_index.write(results_dir), out / runs_index.FILE_NAME)
    (out / "claims.md").write_text(claims_page(shown, results_dir))
    (out / "overview.md").write_text(overview(results_dir, shown))
    (out / "methods.md").write_text(methods_page())
    (out / "pilot.md").write_text(pilot_page(results_dir, out))
    (out / "environment.md").write_text(environment_page(results_dir, shown))
    chapters = []
    for nb in executed:
        target = out / nb.preset / f"{nb.ablation}.ipynb"
        target.parent.mkdir(exist_ok=True)
        group = next(g for g in shown if g.preset == nb.preset)
        copy_notebook(nb, target, [o for o in group.outcomes.values() if o.claim.ablation == nb.ablation])
        chapters.append(f"{GENERATED}/{nb.preset}/{nb.ablation}")
    copy_docs(book, out)
    (book / "_toc.yml").write_text(_toc(chapters, pages))
    return book


def _save_forest(group: PresetOutcomes, out: Path) -> str:
    from reproduce import figures

    fig = figures.forest_plot(list(group.outcomes.values()), group.preset)
    if fig is None:
        return ""
    name = f"forest-{group.preset}.png"
    fig.savefig(out / name, dpi=120, bbox_inches="tight")
    figures.plt.close(fig)
    return name


def copy_notebook(nb: ExecutedNotebook, target: Path, outcomes: list[claims.Outcome]) -> None:
    """Copy an executed notebook into the book, with a warning on top when its outputs no longer
    match the records (other training code, other parameters, runs missing)."""
    notebook = json.loads(nb.path.read_text())
    outdated = [o for o in outcomes if o.verdict in claims.NO_VERDICT and o.verdict != "failed"]
    if outdated or nb.error:
        why = (f"it failed: {nb.error}" if nb.error else
               "its outputs were made by other code or parameters than the current ones: "
               + "; ".join(f"{o.claim.id} is {o.verdict}" for o in outdated))
        warning = {"cell_type": "markdown", "metadata": {}, "id": "book-warning",
                   "source": [f"```{{warning}}\nThis executed notebook is not current evidence: {why}. "
                              "The claims page shows what the records say now.\n```"]}
        notebook["cells"].insert(0, warning)
    for cell in notebook["cells"]:
        fold_for_readers(cell)
    target.write_text(json.dumps(notebook))


def fold_for_readers(cell: dict[str, Any]) -> None:
    """In the book a page reads as results: code inputs folded (one click away), the parameters cells
    (the notebook's and papermill's) folded whole, and what the notebook folded itself kept folded."""
    if cell.get("cell_type") != "code":
        return
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    parameters = {"parameters", "injected-parameters"} & set(tags)
    fold = "hide-cell" if parameters else "hide-input"
    if fold not in tags and "hide-output" not in tags:
        tags.append(fold)
    elif "hide-output" in tags and not parameters:
        tags[tags.index("hide-output")] = "hide-cell"


def _toc(notebook_pages: list[str], runs: list[str] = ()) -> str:
    lines = ["# Generated by reproduce.book: do not edit.", "format: jb-book", "root: intro", "parts:",
             "  - caption: Results", "    chapters:", f"      - file: {GENERATED}/claims"]

    for preset in dict.fromkeys(page.split("/")[1] for page in notebook_pages):
        lines += [f"  - caption: Ablations, preset {preset} (executed notebooks)", "    chapters:"]
        lines += [f"      - file: {page}" for page in notebook_pages if page.split("/")[1] == preset]
    lines += ["  - caption: How", "    chapters:", f"      - file: {GENERATED}/methods",
              f"      - file: {GENERATED}/pilot", f"      - file: {GENERATED}/environment"]
    lines += [f"      - file: {GENERATED}/{DOCS}/{name}" for name in DOC_PAGES]
    if runs:
        lines += ["  - caption: The runs behind the verdicts", "    chapters:",
                  f"      - file: {GENERATED}/{run_pages.RUNS}/index", "        sections:"]
        lines += [f"          - file: {GENERATED}/{run_pages.RUNS}/{page}" for page in runs]
    return "\n".join(lines) + "\n"


DOCS = "docs"  # the project's docs/ pages, copied into the book beside the generated ones
DOC_PAGES = ("running", "scale-out", "gpu", "decisions", "code-map")


def copy_docs(book: Path, out: Path) -> None:
    """docs/*.md into the book, and the claims' forest plot out to docs/forest.png (the README's figure)."""
    docs = book.resolve().parent / DOCS
    (out / DOCS).mkdir(exist_ok=True)
    for name in DOC_PAGES:
        source = docs / f"{name}.md"
        text = source.read_text() if source.exists() else f"# {name}\n\n`docs/{name}.md` is not in this copy.\n"
        (out / DOCS / f"{name}.md").write_text(text)
    forests = sorted(out.glob("forest-*.png"), key=lambda path: path.name != "forest-cpu.png")
    if forests and docs.is_dir():
        shutil.copyfile(forests[0], docs / "forest.png")


def build(results_dir: str | Path = "results", book_dir: str | Path = "book") -> int:
    """Generate the pages, then run jupyter-book (never executing a notebook)."""
    book = write_sources(results_dir, book_dir)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book)]
    finished = subprocess.run(command)
    if finished.returncode == 0:
        print(f"book: {book / '_build' / 'html' / 'index.html'}")
    return finished.returncode
