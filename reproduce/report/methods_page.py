"""The methods page (presets, proxies, deviations, statistics) and the pilot page (choosing the proxy, the
registration)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from reproduce.base.paths import PROJECT_ROOT
from reproduce.datasets import image_data
from reproduce.records import provenance, results
from reproduce.report import figures
from reproduce.report.md import cell
from reproduce.runs import faults
from reproduce.spec import params, plan, registration
from reproduce.training import train
from reproduce.verdicts import claims, decisions, pilot, pilot_v3, rule_versions, sizing, stats, wording

TEMPLATE = Path(__file__).with_name("methods.md")  # the page's prose; its numbers are filled in here


def methods_page() -> str:
    """reproduce/report/methods.md, its {fields} filled from the declarations."""
    design = registration.load()
    registry = plan.load_registry()
    members = sizing.tested_claims(registry)
    noise = design.get("machine_noise_sd", math.nan)
    values = {
        "presets": "\n".join(_preset_lines()),
        "pilot_seeds": ", ".join(map(str, design.get("pilot_seeds", []))) or "none registered",
        "first_seed": design.get("first_seed", params.get_preset("cpu").first_seed),
        "estimators": " ".join(f"`{name}`: {words}." for name, words in plan.ESTIMATORS.items()),
        "crossings": " ".join(f"`{name}`: {words}." for name, words in plan.CROSSINGS.items()),
        "chance_margin": f"{100 * stats.CHANCE_MARGIN:g}",
        "registered": len(members), "family": 2 * len(members),
        "shared": ", ".join(f"{c.id} as {c.same_as} where {', '.join(f'{k} {params.show_value(v)}' for k, v in c.same_when.items())}"
                            for c in registry.values() if c.same_as) or "none",
        "correction": decisions.CORRECTIONS[design.get("correction_method", "holm")],
        "chance_rules": " ".join(f"`{name}`: {words}." for name, words in plan.CHANCE_RULES.items()),
        "alpha_percent": f"{100 * design.get('alpha', claims.ALPHA):g}",
        # Two machines' errors of a run, each off by an independent normal noise of sd s, differ by a median
        # 0.674 x sqrt(2) x s.
        "machine_median": f"{100 * noise * 0.674 * math.sqrt(2):.2f}", "machine_sd": f"{100 * noise:.2f}",
        "fit_images": f"{train.FIT_EVAL_IMAGES:,}",
        "held_out": "; ".join(f"{name}: {count:,} images" for name, count in image_data.VALIDATION_IMAGES.items()),
        "defaults": "\n".join(["| parameter | default | allowed | meaning |", "|---|---|---|---|"] + [
            f"| `{p.name}` | {params.show_value(p.default)} | {cell(p.allowed())} | {cell(p.help)} |"
            for p in params.PARAMS]),
        "named_ablations": ", ".join(plan.NAMED_ABLATIONS),
        "states": "\n".join(["| state | meaning |", "|---|---|"] + [
            f"| {state} | {cell(meaning)} |" for state, meaning in results.RUN_STATES.items()]),
        "training_modules": ", ".join(f"`reproduce/{layer}/`" for layer in provenance.TRAINING_LAYERS),
        "faults": "\n".join(faults_table()),
    }
    return TEMPLATE.read_text().format(**values)


def _preset_lines() -> list[str]:
    lines = []
    for name, preset in params.PRESETS.items():
        lines += [f"### `{name}` ({preset.seeds} seeds at most a claim)", "", f"{preset.proxy}.", "",
                  "Deviations from the paper:", ""]
        lines += [f"- {d}" for d in preset.deviations] + [""]
        for network, config in preset.networks.items():
            shown = ", ".join(f"`{k}={params.show_value(v)}`" for k, v in config.items())
            lines.append(f"- network `{network}`: {shown}")
        lines.append("")
    return lines


def pilot_page(results_dir: str | Path, out: Path) -> str:
    """The v3 pilot: the designs compared, what each showed, each claim's arms and mechanism, C1's target and lrs,
    C12's runs, and the registration it sized (with the chosen design's figure)."""
    folder = Path(results_dir) / pilot.PILOT_DIR
    design = registration.load().get("design", {})
    seeds = ", ".join(map(str, pilot_v3.PILOT_SEEDS))
    lines = ["# The pilot: choosing the proxy (study v3)", "",
             f"Runs on seeds kept for piloting ({seeds}), in `results/pilot/`, made before study v3 was registered and "
             "never used in a verdict (`python -m reproduce pilot` trains them and prints what this page shows; "
             "their records name their code). A proxy can test a claim only in its regime and only if it exercises "
             "the claim's mechanism as the paper's net does: final-error claims are about converged nets (the "
             "baseline barely moves when trained twice as long), overfitting claims need overfitting to show, LRN "
             "must divide unevenly, the pooling arms must leave the same maps. Study v2's pilot (seeds 900-902) and "
             "its records stay in the same folder; [study v2](claims.md) is exploratory now.", ""]
    found = [summary for d in pilot_v3.DESIGNS if (summary := pilot_v3.design_summary(folder, d))]
    if not found:
        return "\n".join(lines + ["No v3 pilot records here.", ""])
    lines += ["| design | seeds | baseline test error | twice as long, minus the baseline | overfitting gap: baseline "
              "/ no dropout / no augmentation | seconds per baseline run |", "|---|---|---|---|---|---|"]
    for r in found:
        longer = "-" if r.longer_minus_baseline is None else f"{100 * r.longer_minus_baseline:+.2f} points"
        gaps = " / ".join(f"{100 * r.gaps[a]:.2f}" if a in r.gaps else "-"
                          for a in ("baseline", "no dropout", "no augmentation"))
        lines.append(f"| {r.design.name} | {r.seeds} | {100 * r.baseline_test:.2f}% | {longer} | {gaps} points | "
                     f"{r.seconds_per_run:.0f} |")
    lines.append("")
    if design.get("why"):
        lines += [f"**Chosen: {design.get('chosen')}.** {design['why']}", ""]
    figure = figures.pilot_curves(pilot_v3.CHOSEN.name, pilot_v3.alexnet_records(folder))
    figure.savefig(out / "pilot-curves.png", dpi=110, bbox_inches="tight")
    figures.plt.close(figure)
    lines += ["```{figure} pilot-curves.png", ":width: 100%", "",
              f"Design {pilot_v3.CHOSEN.name}, each pilot seed: left, the baseline's validation error by epoch against "
              "the same net trained twice as long, and both test errors at the end; right, the error on training "
              "images and on test images at the end of each arm.", "```", ""]
    lines += confirmatory_regime_lines(results_dir, found[-1])
    lines += _claim_arm_lines(folder) + _mechanism_lines(results_dir) + _c1_lines(folder) + _c12_lines(folder)
    return "\n".join(lines + registration_section(results_dir))


def _claim_arm_lines(folder: Path) -> list[str]:
    records = pilot_v3.alexnet_records(folder)
    pairs = pilot_v3.claim_pairs()
    lines = ["## Each claim's arms under the chosen design", "",
             "Per pilot seed, the claim's metric in its other arm minus its paper's arm (positive: the paper's "
             "direction), in points; the spreads the registration sizes the seeds on are pooled over the claims of "
             "one metric.", "", "| claim | other arm - paper's arm | metric | per seed | mean | sd |",
             "|---|---|---|---|---|---|"]
    for pair in pairs:
        diffs = list(pilot_v3.paired_differences(records, pair).values())
        if diffs:
            sd = f"{100 * statistics.stdev(diffs):.2f}" if len(diffs) > 1 else "-"
            lines.append(f"| {pair.claim} | {pair.other_arm} - {pair.paper_arm} | {pair.metric} | "
                         f"{', '.join(f'{100 * d:+.2f}' for d in diffs)} | {100 * sum(diffs) / len(diffs):+.2f} | {sd} |")
    lines.append("")
    for spread in pilot_v3.paired_spreads(records, pairs):
        if spread.df:
            lines.append(f"- {spread.metric}, pooled over {', '.join(spread.claims)}: sd {100 * spread.sd:.2f} "
                         f"points, df {spread.df}")
    return lines + [""]


def _mechanism_lines(results_dir: str | Path) -> list[str]:
    checks = pilot_v3.mechanism_checks(results_dir)
    lines = ["## Each claim's mechanism on the proxy", "",
             "What the claims page shows beside each verdict, from these records and the LRN probe "
             "(`python -m reproduce mechanisms`: the spread of log of LRN's factor over the active units of 256 test "
             "images, in the paper's net at 227 px on raw pixels and in the proxy, at their initial weights and after "
             "40 SGD steps; `results/pilot/mechanisms.json`).", "", "| claim | on this proxy |", "|---|---|"]
    lines += [f"| {claim_id} | {cell(text)} |" for claim_id, text in checks.items()]
    return lines + [""] + [f"    {line}" for line in pilot_v3.mechanism_lines(Path(results_dir) / pilot.PILOT_DIR)] + [""]


def _c1_lines(folder: Path) -> list[str]:
    target = pilot_v3.c1_target(folder)
    if target is None:
        return []
    lines = ["## C1's target and learning rates", "",
             f"The paper reads Figure 1 at 25% training error, {100 * pilot_v3.TARGET_SHARE:.1f}% of the way from "
             "chance (90%) to its four-layer net's converged 13%. The proxy's four-layer net, trained "
             f"{pilot_v3.CONVERGED_EPOCHS} epochs at lr 0.01, ends at {', '.join(f'{100 * e:.2f}' for e in target[1])}% "
             f"test error (per pilot seed), so its target is {100 * target[0]:.2f}%. Iterations to it per pilot seed "
             "(the registered crossing rule); 'chance': the run never left chance (the registered rule leaves its seed "
             "out); '>N': not reached by iteration N. Each arm's lr is the fastest of its grid that reached the "
             "target in every seed.", "", "| arm | lr | iterations, per seed |", "|---|---|---|"]
    lines += [f"| {activation} | {lr:g} | {', '.join(row)} |" for (activation, lr), row in pilot_v3.c1_rows(folder).items()]
    return lines + [""]


def _c12_lines(folder: Path) -> list[str]:
    lines = ["## C12's runs", "",
             f"Bias 1 against bias 0, the first {pilot_v3.C12_EPOCHS} epochs of the chosen design (its first lr drop "
             "comes long after), iterations to 50% training error per pilot seed:", "",
             "| arm | iterations, per seed |", "|---|---|"]
    lines += [f"| {name} | {', '.join(row)} |" for name, row in pilot_v3.c12_rows(folder).items()]
    return lines + [""]


def confirmatory_regime_lines(results_dir: str | Path, chosen: pilot_v3.DesignSummary, preset: str = "cpu") -> list[str]:
    """The regime check on the confirmatory runs themselves: the baseline's mean test error against the pilot's
    twice-as-long runs, and the training-test gap with and without dropout (C10's two arms)."""
    claim = plan.load_registry()["C10"]
    arms = {}
    for label, by_seed in plan.planned_runs(claim, preset, params.get_preset(preset).seeds).items():
        arms[label] = [r for r in (rule_versions.complete_record(results_dir, c) for c in by_seed.values()) if r]
    baseline, no_dropout = arms[claim.paper_arm.name], arms[claim.other_arm.name]
    if not baseline or chosen.longer_minus_baseline is None:
        return ["**The confirmatory runs' regime**: no confirmatory baseline run here yet.", ""]
    test = statistics.mean(claims.final_test_error(r) for r in baseline)
    longer = chosen.baseline_test + chosen.longer_minus_baseline
    line = (f"**The confirmatory runs' regime**: the baseline's test error is {100 * test:.2f}% (mean of "
            f"{len(baseline)} confirmatory seeds), {100 * (test - longer):+.2f} points from the pilot's runs of twice "
            f"as long ({100 * longer:.2f}%, seeds {', '.join(map(str, pilot_v3.PILOT_SEEDS))}); its training-test gap "
            f"is {100 * statistics.mean(claims.final_fit_gap(r) for r in baseline):.2f} points")
    if no_dropout:
        line += (f", and without dropout {100 * statistics.mean(claims.final_fit_gap(r) for r in no_dropout):.2f} "
                 f"points ({len(no_dropout)} seeds)")
    return [line + ".", ""]


MAX_SHOWN_RATIO = 100.0  # a ratio of iterations beyond this is no effect a net could show


def _detectable(claim: plan.Claim, effect: float) -> str:
    """The smallest effect the registered seeds detect, or, for a ratio whose spread is too wide at these seeds
    (the sizing then returns an astronomical ratio), that none is within reach."""
    if claim.kind == "ratio" and effect > MAX_SHOWN_RATIO:
        return f"none within reach (over {MAX_SHOWN_RATIO:g}x)"
    return wording.effect_size(claim, effect)


def registration_section(results_dir: str | Path) -> list[str]:
    """What the registration fixed from the pilot: each claim's spread, seeds and detectable effect, what the budget
    leaves undecidable; and the check that every confirmatory record was made after it."""
    design = registration.load()
    if not design:
        return ["## The registration", "", "No registration here (`reproduce/spec/registration.toml`).", ""]
    registry = plan.load_registry()
    members = len(design["seeds"])
    lines = ["## The registration (study v3)", "",
             f"Committed before any confirmatory run (`reproduce/spec/registration.toml`; its numbers follow from the "
             f"records above and from study v2's, which `tests/test_study_registration.py` recomputes). "
             f"{design['correction']}. Each claim's seeds give 80% power against its threshold, one-sided, at the "
             f"constrained Holm's first level {design['alpha']:g} / {members}, with the spread's 95% upper confidence "
             f"bound, where the budget ({design['budget_hours']:g} hours on 2 cores for the whole study; the registered "
             f"runs take {design['study_hours']:.2f}) affords them, cheapest first; the claims left over share what "
             "remains, and the smallest effect their seeds detect is what they can promise.", "",
             "| claim | threshold | spread sized on (sd, its upper bound, df) | seeds needed | registered seeds | "
             "smallest effect detected |", "|---|---|---|---|---|---|"]
    for claim_id, seeds in design["seeds"].items():
        claim = registry[claim_id]
        spread = design["spreads"][claim.metric if claim.kind == "difference" else claim_id]
        scale = (lambda v: f"{v:.3f} (log)") if claim.kind == "ratio" else (lambda v: f"{100 * v:.2f} points")
        needed = design["seeds_needed"][claim_id]
        lines.append(f"| {{ref}}`{claim_id} <{claim_id.lower()}>` | {wording.effect_size(claim, claim.threshold)} "
                     f"| {cell(spread['source'])}: {scale(spread['sd'])}, {scale(spread['upper'])}, {spread['df']} "
                     f"| {needed or 'more than 40'} | {seeds} | {_detectable(claim, design['detectable'][claim_id])} |")
    lines.append("")
    if design.get("open_by_design"):
        short = ", ".join(design["open_by_design"])
        lines += [f"**Short of 80% power by design**: {short}. The budget gives them fewer seeds than 80% power "
                  "against their thresholds needs; each still has its registered test, and with 80% power settles "
                  "only an effect at least as far from the threshold as its last column says.", ""]
    since = rule_versions.registration_commit(PROJECT_ROOT)
    if since is not None:
        records = rule_versions.confirmatory_records(results_dir, design["preset"])
        problems = rule_versions.order_problems(PROJECT_ROOT, records)
        lines += [f"Registered in commit `{since[0][:10]}` ({since[1][:10]}). Of the {len(records)} confirmatory "
                  "records here, " + ("every one was made by a clean checkout of a commit that descends from it."
                                      if not problems else f"{len(problems)} were not: " + "; ".join(problems[:5])), ""]
    return lines


def faults_table() -> list[str]:
    """The faults and bad inputs tried, from the list tests/test_faults.py runs one test per case of."""
    lines = ["## Faults and bad inputs tried", "",
             f"Each of these {len(faults.CASES)} cases is an automated test on the CPU, run in CI "
             "(`tests/test_faults.py`, which checks that no case lacks a test); this table is generated from "
             "the same list (`reproduce/runs/faults.py`).", "",
             "| kind | fault or input | what the user gets |", "|---|---|---|"]
    for kind in faults.KINDS:
        lines += [f"| {kind} | {cell(case.fault)} | {cell(case.outcome)} |"
                  for case in faults.CASES if case.kind == kind]
    return lines
