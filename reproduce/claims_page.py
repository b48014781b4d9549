"""The claims page and the title page's summary: every claim's verdict at each preset, the forest plot, the
rules and the runs behind them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reproduce import claims, params, plan, registrations, results, run_pages, wording
from reproduce.book_inputs import PresetOutcomes
from reproduce.md import cell, verdict_badge


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
        lines += [f"| [{c.id}](#{c.id.lower()}) | {cell(c.title)} | {cell(c.paper_value)} | {cell(c.reason)} |"
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
        lines.append(f"| {claim_id} | {verdict_badge(verdict['verdict'])} | {cell(verdict['summary'][:220])} |")
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
        lines.append(f"| {{ref}}`{claim.id}: {cell(claim.title)} <{claim.id.lower()}>` | "
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
        cells = [f"{verdict_badge(g.outcomes[claim.id].verdict)}<br>{cell(g.outcomes[claim.id].short)}" for g in shown]
        lines.append(f"| [{claim.id}](#{claim.id.lower()}) | {cell(claim.title)} | " + " | ".join(cells) + " |")
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
        lines.append(f"| {links} | {cell(outcome.claim.title)} | {_verdictcell(outcome, group.preset)} "
                     f"| {cell(n)} | {cell(tested)} | {wording.effect_size(outcome.claim, detectable)} |")
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


def _verdictcell(outcome: claims.Outcome, preset: str) -> str:
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
                      f": {verdict_badge(v.verdict)} {cell(v.measured)}" for v in versions]
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
