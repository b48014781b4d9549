"""The methods page (presets, proxies, deviations, statistics) and the pilot page (choosing the proxy, the
registration)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reproduce import claims, data, params, plan, registrations, results, wording
from reproduce.md import cell


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
    lines += [f"| {state} | {cell(meaning)} |" for state, meaning in results.RUN_STATES.items()]
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
        lines.append(f"| `{param.name}` | {params.show_value(param.default)} | {cell(param.allowed())} | "
                     f"{cell(param.help)} |")
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
                     f"{_sdcell(r.differences_sd, r.differences_df)} | {r.train_seconds:.0f} |")
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


def _sdcell(sd: float, df: int) -> str:
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
                     f"| {cell(spread['source'])}: {scale(spread['sd'])}, {scale(spread['upper'])}, {spread['df']} "
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
        lines += [f"| {kind} | {cell(case.fault)} | {cell(case.outcome)} |"
                  for case in faults.CASES if case.kind == kind]
    return lines
