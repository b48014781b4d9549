"""The claims page and the title page's summary: every claim's verdict at each preset, the forest plot, the
rules and the runs behind them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from reproduce.records import dataframe, results
from reproduce.report import run_pages
from reproduce.report.book_inputs import PresetOutcomes
from reproduce.report.md import cell, verdict_badge
from reproduce.spec import params, plan, registration
from reproduce.verdicts import claims, decisions, pilot_v3, rule_versions, wording

INTRO = ("Each claim of the paper, the rule that decides it (registered in `reproduce/spec/claims.toml` before its "
         "confirmatory runs) and what the runs in `results/` say of it, on the proxy named beside it - never on the "
         "paper's ImageNet runs. The registered claims are decided together: two one-sided tests each (the paper's "
         "direction; the claimed size ruled out), a correction across all of them (the registration's: Holm's step-down, "
         "constrained by each claim's two nulls, which cannot both be true), so that the chance of any false "
         "verdict is at most 5%. Each verdict is shown with the interval it was decided at; the words under it are "
         "explained [below](#reading-the-verdicts).")


def claims_page(shown: list[PresetOutcomes], results_dir: str | Path = "results") -> str:
    lines = ["# The paper's claims, retested", "", INTRO, ""]
    if not shown:
        lines += ["No executed notebooks under `results/notebooks/`: run `nox -s reproduce`.", ""]
    for group in shown:
        lines += [tally(group), ""]
        if group.forest:
            lines += [f"```{{figure}} {group.forest}", ":name: forest-" + group.preset, ":width: 100%", "",
                      f"Preset `{group.preset}`: each tested claim's effect (dot; a triangle where it is a bound), the "
                      "interval its verdict was decided at (thin, with end marks: Holm's levels) and its plain 95% "
                      "interval (thick), on its own scale (points of error; ratios of iterations on a log axis), "
                      "coloured by verdict; dashed: the decision threshold; star: the paper's number.", "```", ""]
    if len(shown) > 1:
        lines += _side_by_side(shown)
    for group in shown:
        lines += _glance_table(group)
    lines += glossary() + _registration_intro(shown)
    lines += ["## The claims and their rules", ""]
    checks = pilot_v3.mechanism_checks(results_dir)
    for claim in plan.load_registry().values():
        lines += _claim_section(claim, shown, checks)
    untested = [c for c in plan.load_registry().values() if c.kind == "untested"]
    if untested:
        lines += ["## Not tested here", "", "| | claim | the paper's number | why not |", "|---|---|---|---|"]
        lines += [f"| [{c.id}](#{c.id.lower()}) | {cell(c.title)} | {cell(c.paper_value)} | {cell(c.reason)} |"
                  for c in untested]
        lines.append("")
    return "\n".join(lines + exploratory_section(results_dir))


def tally(group: PresetOutcomes) -> str:
    """The preset's verdicts counted, a comparison counted once where two claims are one computation."""
    merged = decisions.merge_identical(group.outcomes.values())
    counts = {verdict: sum(1 for _, o in merged if o.verdict == verdict) for verdict in claims.VERDICTS}
    others = sum(1 for _, o in merged if o.verdict not in claims.VERDICTS)
    said = ", ".join(f"{verdict_badge(v)} {n}" for v, n in counts.items() if n)
    joined = [ids for ids, _ in merged if len(ids) > 1]
    note = "".join(f" ({' and '.join(ids)} are one computation here, counted once)" for ids in joined)
    waiting = f", {others} without a verdict yet (their runs are not all there)" if others else ""
    return f"**Preset `{group.preset}`, {len(merged)} claims:** {said}{waiting}.{note}"


GLOSSARY = (
    ("on-this-proxy", "on this proxy", "the verdict is about the proxy in the 'tested on' column (Fashion-MNIST, a "
     "net sized for it), not about the paper's ImageNet runs."),
    ("holm", "decided at", "the interval at the levels Holm's step-down correction decided the claim's two one-sided "
     "tests at (its lower end at the direction test's level, its upper end at the size test's): the verdict follows "
     "from it alone - reproduced or consistent when it lies above no effect, not reproduced when it lies below the "
     "threshold. The plain 95% interval beside it can clear no effect while this one does not: the family's "
     "correction asks for more."),
    ("undecided", "why undecided", "the nearer of the two tests, its p-value, the level Holm needed for it, and "
     "about how many seeds at the spread measured would decide it."),
    ("preliminary", "preliminary", "fewer seeds ran than were registered: a look at the data, not the registered "
     "test."),
    ("machine", "holds on another machine", "the verdict stays if each run's error moved by the noise measured "
     "between two kinds of CPU (the registration's machine_noise_sd); 'could change on another machine' where it "
     "would not."),
    ("caveat", "caveat", "the proxy departs from the paper in a way that bears on this claim; its section says how."),
    ("lr", "lr tuned / lr not tuned", "whether each arm ran at its own learning rate, chosen on the pilot's seeds "
     "(the paper tuned the rate for Figure 1's nets), or both at the preset's."),
    ("bound", "an upper / a lower bound", "a ratio claim whose runs of one arm never reached the target counts their "
     "last iteration: when the fast arm's did, the ratio measured is at most the true one's upper bound (shown "
     "'<='); when the slow arm's did, a lower bound ('>='). Runs that ended at chance are named, with the estimate "
     "without them beside the registered one."),
)


def glossary() -> list[str]:
    lines = ["(reading-the-verdicts)=", "## Reading the verdicts", "",
             f"{verdict_badge('reproduced')} the paper's direction shown, with an estimate at least the registered size; "
             f"{verdict_badge('consistent with the paper')} the direction shown, a smaller estimate; "
             f"{verdict_badge('not reproduced')} the registered size ruled out; {verdict_badge('inconclusive')} "
             f"neither; {verdict_badge('not tested here')} with the reason. A claim whose runs are missing, unfinished, "
             "failed or made by other training code shows their state instead (missing, running, unmeasured, stale, "
             "failed).", ""]
    for anchor, term, words in GLOSSARY:
        lines += [f"(glossary-{anchor})=", f"**{term}**: {words}", ""]
    return lines


EXPLORATORY = {"v2": "the second CPU study (v2), registered then, exploratory now",
               "v1": "the first CPU study (v1), exploratory"}  # results/<name>/verdicts.json, newest first


def exploratory_section(results_dir: str | Path = "results") -> list[str]:
    """The earlier CPU studies, each kept as its own code judged it, beside the confirmatory one: they shaped it
    and decide nothing now."""
    lines = []
    for name, words in EXPLORATORY.items():
        path = Path(results_dir) / name / "verdicts.json"
        if not path.exists():
            continue
        found = json.loads(path.read_text())
        lines += [f"## Exploratory: {words}", "",
                  f"{found['about']} Its verdicts, as the code of commit `{found['commit'][:12]}` gave them; its "
                  f"records and executed notebooks are in `results/{name}/`. They informed the design of the study "
                  "that decides the claims above; they decide nothing themselves.", "",
                  f"| claim | {name} verdict (exploratory) | measured then |", "|---|---|---|"]
        for claim_id, verdict in found["claims"].items():
            lines.append(f"| {claim_id} | {verdict_badge(verdict['verdict'])} | "
                         f"{cell(textwrap.shorten(verdict['summary'], 240))} |")
        lines.append("")
    return lines


def overview(results_dir: str | Path, shown: list[PresetOutcomes]) -> str:
    """The title page's summary (included by book/intro.md): when and by which code the results were
    made, on what, how long the grid took, and the claims at a glance."""
    frame = dataframe.load_records(results_dir)
    used = {r for g in shown for o in g.outcomes.values() for r in o.run_ids}
    if frame.empty or not used:
        return "*No run records behind a verdict yet: run `nox -s reproduce`.*\n"
    behind = frame[frame["run_id"].isin(used)]
    commits = behind["git_commit"].dropna().value_counts()
    devices = ", ".join(sorted(set(behind["device"].dropna())))
    lines = [f"**Results as of {str(behind['finished_at'].max())[:10]}**: {len(behind)} runs, made by commit "
             + ", ".join(f"`{c[:12]}` ({n} runs)" for c, n in commits.items()) + f", on {devices}.", ""]
    for group in shown:
        lines += study_grid_lines(results_dir, group.preset, used)
    lines += ["", "| claim | " + " | ".join(f"`{g.preset}`" for g in shown) + " |", "|---|" + "---|" * len(shown)]
    registry = plan.load_registry()
    for ids in _rows_of(shown):
        claim = registry[ids[0]]
        cells = [verdict_badge(g.outcomes[claim.id].verdict)
                 + (" on this proxy" if g.outcomes[claim.id].verdict in claims.DECIDED and claim.trains else "")
                 for g in shown]
        title = f"{{ref}}`{claim.id}: {cell(claim.title)} <{claim.id.lower()}>`" + "".join(
            f" = {{ref}}`{other} <{other.lower()}>`" for other in ids[1:])
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def _rows_of(shown: list[PresetOutcomes]) -> list[list[str]]:
    """One row per claim, two claims that are one computation in every preset shown on one row."""
    merged = [{tuple(ids) for ids, _ in decisions.merge_identical(g.outcomes.values())} for g in shown]
    together = set.intersection(*merged) if merged else set()
    rows, seen = [], set()
    for claim_id in plan.load_registry():
        if claim_id in seen:
            continue
        ids = next((list(group) for group in together if claim_id in group), [claim_id])
        seen.update(ids)
        rows.append(ids)
    return rows


def study_grid_lines(results_dir: str | Path, preset: str, used: set[str]) -> list[str]:
    """The grids that trained the runs behind the preset's verdicts: how many of them each trained, how long it
    took, on what, with which code (a rehearsal of one ablation is named as what it was, never as the study)."""
    grids = [g for g in results.load_grid_records(results_dir) if g["preset"] == preset]
    made = [(g, sum(1 for r in g["runs"] if r["action"] == "trained" and r["run_id"] in used)) for g in grids]
    made = [(g, n) for g, n in made if n]
    if not made:
        return []
    total = sum(n for _, n in made)
    lines = [f"- **The `{preset}` study's {total} runs behind the verdicts** were trained by {len(made)} grid"
             f"{'s' if len(made) > 1 else ''} ({sum(g['wall_s'] for g, _ in made) / 60:.1f} min in all; the "
             "[environment page](generated/environment.md) has every grid and the study's time on 2 and 16 cores):"]
    for g, n in made:
        lines.append(f"  - {g['finished_at'][:10]}: {n} of them in {g['wall_s'] / 60:.1f} min ({_grid_scope(g)}, "
                     f"{g['layout']}, commit `{str(g['code'].get('commit'))[:12]}`)")
    return lines + [""]


def _grid_scope(grid: dict[str, Any]) -> str:
    """What a grid trained: the whole preset, or the part of it that `--only`/`--seeds` chose (so a one-ablation
    rehearsal is never shown as the whole study)."""
    only, seeds = grid["options"].get("only"), grid["seeds"]
    if not only and seeds == params.get_preset(grid["preset"]).seeds:
        return f"the whole preset `{grid['preset']}`, {len(grid['runs'])} runs planned"
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
            "records (from the git history of `reproduce/spec/claims.toml`: a version is a change of kind, arms, "
            "metric, threshold, target or lr grid; 'after run records existed' means after run records were first "
            f"committed, {rule_versions.first_records_date() or 'never'}), latest last. The other rules are as "
            "first registered.", ""]


def _glance_table(group: PresetOutcomes) -> list[str]:
    preset = params.get_preset(group.preset)
    design = registration.load()
    study = f" - study {design['study']}, confirmatory" if design.get("preset") == group.preset and design.get("study") else ""
    lines = [f"## Preset `{group.preset}`{study}", "", f"*{preset.proxy}.*", "", *_tested_on_lines(group), "",
             "| | claim | verdict | effect: 95% interval, n | [decided at](#glossary-holm) | "
             "[why undecided](#glossary-undecided) |", "|---|---|---|---|---|---|"]
    for ids, outcome in decisions.merge_identical(group.outcomes.values()):
        if outcome.claim.kind == "untested":
            continue
        links = ", ".join(f"[{i}](#{i.lower()})" for i in ids)
        measured = outcome.short + (f" of {outcome.claim.seeds} registered" if outcome.preliminary else "")
        lines.append(f"| {links} | {cell(outcome.claim.title)} | {_verdict_cell(outcome, group.preset)} "
                     f"| {cell(measured)} | {cell(_decided_at(outcome))} | {cell(_why_undecided(outcome))} |")
    return lines + [""] + _glance_notes(group) + [
        "Effects are in points of error (or of the claim's measure), the other arm minus the paper's arm: positive "
        "is the paper's direction; C1 and C12 are ratios of iterations (geometric means of the per-seed ratios).", ""]


def _tested_on_lines(group: PresetOutcomes) -> list[str]:
    """What each network's claims were measured on, once, and the claims whose conditions change that."""
    lines = []
    trained = [o.claim for o in group.outcomes.values() if o.claim.trains and o.verdict != "not tested here"]
    for network in dict.fromkeys(claim.network for claim in trained):
        mine = [claim for claim in trained if claim.network == network]
        usual = wording.tested_on(group.preset, network, dataset=False)
        other = [f"{c.id}: {wording.tested_on(group.preset, network, dataset=False, conditions=c.conditions)}"
                 for c in mine if wording.tested_on(group.preset, network, dataset=False, conditions=c.conditions) != usual]
        lines.append(f"- **[Tested on](#glossary-on-this-proxy)**, {', '.join(c.id for c in mine)}: {usual}"
                     + (f" ({'; '.join(other)})" if other else ""))
    return lines


def _decided_at(outcome: claims.Outcome) -> str:
    if outcome.deciding is None:
        return ""
    return wording.interval_text(outcome.claim, *outcome.deciding)


def _why_undecided(outcome: claims.Outcome) -> str:
    if outcome.verdict != "inconclusive" or outcome.levels is None:
        return ""
    return wording.undecided_text(outcome)


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
    lines = [f"**Shared runs.** {_claims_words(most)} use the same baseline run of every seed as an arm: one unlucky "
             "seed moves them together, so their verdicts are not independent evidence."
             + (f" {', '.join(others)} share runs among themselves too." if others else ""), ""]
    if family:
        lines += [f"**Decided together.** The registered claims' {family} one-sided hypotheses (each claim's "
                  "direction, and its size) form one family: the registered correction "
                  f"({decisions.CORRECTIONS[registration.load().get('correction_method', 'holm')]}) keeps the chance "
                  "that any verdict above is wrong - a direction shown that is not there, or a size ruled out that is - at "
                  "5%. A registered claim whose runs are not all here yet counts in the family at p = 1, so a verdict "
                  "given before the study is whole is held to at least the registered family's level. Each claim's "
                  "section gives its raw and adjusted p-values.", ""]
    return lines


QUALIFIER_ANCHORS = {"on this proxy": "on-this-proxy", "preliminary": "preliminary",
                     "holds on another machine": "machine", "could change on another machine": "machine",
                     "caveat": "caveat", "lr tuned": "lr", "lr not tuned": "lr"}


def _claims_words(ids: list[str]) -> str:
    return f"Claim {ids[0]} alone" if len(ids) == 1 else f"The {len(ids)} claims {', '.join(ids)} each"


def _verdict_cell(outcome: claims.Outcome, preset: str) -> str:
    """The verdict, then what qualifies it, each word a link to what it means: on this proxy, preliminary,
    another machine, the caveat, the lrs."""
    claim = outcome.claim
    machine = ("holds on another machine" if outcome.machine.startswith("holds") else
               "could change on another machine" if outcome.machine.startswith("could") else "")
    notes = [note for note in (
        "on this proxy" if outcome.verdict in claims.DECIDED and claim.trains else "",
        "preliminary" if outcome.preliminary else "", machine,
        "caveat" if claim.notes.get("proxy_note") and claim.trains else "",
        _lr_flag(outcome, preset)) if note]
    linked = [f"[{note}](#glossary-{QUALIFIER_ANCHORS[note]})" for note in notes]
    return verdict_badge(outcome.verdict) + (f"<br>{', '.join(linked)}" if linked else "")


def _lr_flag(outcome: claims.Outcome, preset: str) -> str:
    if outcome.verdict == "not tested here":
        return ""
    return {True: "lr tuned", False: "lr not tuned", None: ""}[wording.lr_fairness(outcome.claim, preset).tuned]


def _claim_section(claim: claims.Claim, shown: list[PresetOutcomes], checks: dict[str, str] | None = None) -> list[str]:
    """A claim: its words and, per preset, the verdict with the intervals and, on the cpu proxy, how it exercises
    the claim's mechanism; the rule, the notes, the per-seed values, the rule's history and the runs folded below."""
    lines = [f"({claim.id.lower()})=", f"### {claim.id}: {claim.title}", "",
             f"> {claim.quote} (section {claim.section})", ""]
    for group in shown:
        lines += [_verdict_line(group.outcomes[claim.id], group.preset), ""]
        if group.preset == "cpu" and (checks or {}).get(claim.id):
            lines += [f"**The mechanism on this proxy** ([the pilot](pilot.md)): {checks[claim.id]}.", ""]
    lines += ["```{dropdown} The rule, the paper's number, the notes" + (", the per-seed values and the runs"
                                                                        if claim.trains else ""),
              f"- **Paper:** {claim.paper_value}", f"- **Rule:** {wording.rule_text(claim)}"]
    lines += [f"- **{NOTE_TITLES.get(key, key)}:** {text}" for key, text in claim.notes.items()]
    if claim.ablation:
        lines.append(f"- **Notebook:** `experiments/{claim.ablation}.ipynb`")
    if claim.trains and shown:
        lines.append(f"- **Learning rates ({shown[0].preset}):** {wording.lr_fairness(claim, shown[0].preset).text}")
    for group in shown:
        lines += _details(claim, group)
    return lines + ["```", ""]


def _verdict_line(outcome: claims.Outcome, preset: str) -> str:
    claim = outcome.claim
    parts = [f"**{preset}:** {verdict_badge(outcome.verdict)}"]
    if outcome.interval is None:
        return " ".join(parts) + (f" {outcome.summary}" if outcome.summary and claim.kind != "untested" else "")
    parts.append(f"effect {outcome.short} (95%)")
    if outcome.deciding is not None:
        parts.append(f"[decided at](#glossary-holm) {_decided_at(outcome)}")
    if _why_undecided(outcome):
        parts.append(f"[undecided](#glossary-undecided): {_why_undecided(outcome)}")
    if outcome.dead:
        without = outcome.without_dead
        parts.append(f"[ended at chance](#glossary-bound): {', '.join(outcome.dead)}" + (
            f" (without them {without.estimate:.2f}x [{without.low:.2f}, {without.high:.2f}], n = {without.n}; "
            "not the registered estimate)" if without else ""))
    parts.append(f"tested on {wording.proxy_text(claim, preset)}")
    return " · ".join(parts)


def _details(claim: claims.Claim, group: PresetOutcomes) -> list[str]:
    outcome, lines = group.outcomes[claim.id], []
    if outcome.interval is not None and outcome.summary:
        lines.append(f"- **{group.preset}, measured:** {outcome.summary}")
    if outcome.adjusted is not None:
        lines.append(f"- **{group.preset}, decided:** {wording.holm_text(outcome)}")
    versions = group.versions.get(claim.id, [])
    if len(versions) > 1:
        lines.append(f"- **{group.preset}, the rule's registered versions** (git history of `reproduce/spec/claims.toml`; "
                     "each judged on today's records with the family's correction):")
        lines += [f"  - `{v.commit[:12]}` {v.date[:10]}{' (after run records existed)' if v.after_records else ''}: "
                  f"{verdict_badge(v.verdict)} {cell(v.measured)}" for v in versions]
    if outcome.per_seed:
        lines += ["", *_per_seed_table(outcome), ""]
    if outcome.run_ids:
        page = run_pages.page_name(claim.id, group.preset)
        lines.append(f"- **{group.preset}, runs:** [the {len(outcome.run_ids)} runs: settings, final errors, code and "
                     f"records]({run_pages.RUNS}/{page}.md)")
    return lines


def _per_seed_table(outcome: claims.Outcome) -> list[str]:
    """The per-seed values of each arm (or label), one row per seed."""
    arms = list(outcome.per_seed)
    seeds = sorted({seed for by_seed in outcome.per_seed.values() for seed in by_seed})
    points = outcome.claim.kind != "ratio"
    shown = (lambda v: f"{100 * v:.2f}") if points else (lambda v: f"{v:.0f}")
    unit = "(points)" if points else "(iterations)"
    lines = [f"| seed | {' | '.join(f'{arm} {unit}' for arm in arms)} |", "|---|" + "---|" * len(arms)]
    for seed in seeds:
        values = [outcome.per_seed[arm].get(seed) for arm in arms]
        lines.append(f"| {seed} | " + " | ".join("" if v is None else shown(v) for v in values) + " |")
    return lines


NOTE_TITLES = {"target_note": "Target", "threshold_note": "Threshold", "lr_note": "Learning-rate sweep",
               "proxy_note": "On this project's proxies", "metric": "Metric"}
