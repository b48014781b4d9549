"""The methods page (presets, proxies, deviations, statistics) and the pilot page (choosing the proxy, the
registration)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reproduce.base.paths import PROJECT_ROOT
from reproduce.datasets import image_data
from reproduce.records import provenance, results
from reproduce.report import figures
from reproduce.report.md import cell
from reproduce.runs import faults
from reproduce.spec import params, plan, registration
from reproduce.training import train
from reproduce.verdicts import claims, pilot, rule_versions, stats, wording

TEMPLATE = Path(__file__).with_name("methods.md")  # the page's prose; its numbers are filled in here


def methods_page() -> str:
    """reproduce/report/methods.md, its placeholders filled from the declarations."""
    design = registration.load()
    registered = [c for c in plan.load_registry().values() if c.estimator]
    noise = design.get("machine_noise_sd", math.nan)
    values = {
        "presets": "\n".join(_preset_lines()),
        "pilot_seeds": ", ".join(map(str, design.get("pilot_seeds", []))) or "none registered",
        "first_seed": design.get("first_seed", params.get_preset("cpu").first_seed),
        "estimators": " ".join(f"`{name}`: {words}." for name, words in plan.ESTIMATORS.items()),
        "crossings": " ".join(f"`{name}`: {words}." for name, words in plan.CROSSINGS.items()),
        "chance_margin": f"{100 * stats.CHANCE_MARGIN:g}",
        "registered": len(registered), "family": 2 * len(registered),
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
    """The pilot: the designs compared, what each showed, and the one the study registered (with its figure)."""
    folder = Path(results_dir) / pilot.PILOT_DIR
    design = registration.load().get("design", {})
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


    claim = plan.load_registry()["C10"]
    arms = {}
    for label, by_seed in plan.planned_runs(claim, preset, params.get_preset(preset).seeds).items():
        found = [r for r in (rule_versions.complete_record(results_dir, config) for config in by_seed.values()) if r]
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
    design = registration.load()
    if not design:
        return ["## The registration", "", "No registration here (`reproduce/spec/registration.toml`).", ""]
    registry = plan.load_registry()
    lines = ["## The registration", "",
             f"Committed before any confirmatory run (`reproduce/spec/registration.toml`; its numbers follow from the "
             f"records above and from results/v1, which `tests/test_study_registration.py` recomputes). Each claim's seeds "
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
                     f"| {cell(spread['source'])}: {scale(spread['sd'])}, {scale(spread['upper'])}, {spread['df']} "
                     f"| {needed or 'more than 40'} | {seeds} | {wording.effect_size(claim, design['detectable'][claim_id])} |")
    lines.append("")
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
