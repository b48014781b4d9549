"""The pilot of the CPU study: runs on seeds kept for piloting, which choose the study's proxy and its C1
learning rates, and which no verdict ever uses.

What the proxy must do for the claims to be testable on it: its baseline must be near convergence (its test
error within about a point of the same net trained twice as long: final-error claims are about converged
nets), and taking away dropout or augmentation must overfit visibly (a training-test gap of several points:
C7 and C10 are about overfitting). The designs below are the candidates compared; `python -m reproduce
pilot` trains them into results/pilot/ and prints, per design, what they show; the methods page shows the
same from the records. The spread of their paired differences is what the registered seeds are sized on.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproduce.records import results
from reproduce.spec import params, plan
from reproduce.verdicts.stats import smoothed_crossing

PILOT_SEEDS = (900, 901, 902)  # never a verdict's: the confirmatory runs take other seeds
PILOT_DIR = "pilot"  # under the results folder

# The AlexNet proxy every design shares: the narrow small-image net of the v1 study (He init, inputs at unit
# scale, zero biases), tested on all 10,000 test images after its last epoch.
ALEXNET_BASE = {"model": "alexnet-small", "width": 0.125, "weight_init": "he", "input_scale": "unit",
                "bias_init": "zero", "log_every": 10, "test_every_epoch": False}


@dataclass(frozen=True)
class Design:
    name: str
    words: str
    settings: dict[str, Any]  # on top of ALEXNET_BASE
    seeds: tuple[int, ...] = PILOT_SEEDS  # the pilot seeds it was given (a design ruled out early got fewer)


# Tried in this order. The first two on one seed: at 20 epochs (8,000 images) and 10 (16,000) the lr schedule
# had not dropped once, and the same net trained twice as long ended 2.6 points lower in both - far from the
# converged regime, so more seeds of them would not change the choice. The fourth, cheaper than the third,
# on one seed too: with a patience of 1 its lr dropped on the first noisy epoch and the baseline ended at 18.5%,
# 4 points above the third's.
DESIGNS = (
    Design("8k-20", "the first 8,000 training images, 20 epochs", {"train_limit": 8000, "epochs": 20}, (900,)),
    Design("16k-10", "the first 16,000 training images, 10 epochs", {"train_limit": 16000, "epochs": 10}, (900,)),
    Design("8k-40", "the first 8,000 training images, 40 epochs", {"train_limit": 8000, "epochs": 40}),
    Design("8k-30-p1", "the first 8,000 training images, 30 epochs, lr dropped after 1 epoch without progress",
           {"train_limit": 8000, "epochs": 30, "lr_patience": 1}, (900,)),
)
# What each design is judged by: the baseline, the same trained twice as long, and the two arms whose
# overfitting C7 and C10 are about.
ARMS = {"baseline": {}, "twice as long": {"epochs": 2}, "no dropout": {"dropout": 0.0},
        "no augmentation": {"augment": False}}

# C1's learning rates are chosen here: each arm of the four-layer net at every lr of its grid, on the pilot
# seeds; the registry then names one lr per arm. The grids are centred on where the exploratory v1 study found
# each arm fastest (ReLU at 0.005, tanh at 0.08, the edge of its grid then), factors of 2 around them.
C1_LRS = {"relu": (0.0025, 0.005, 0.01, 0.02), "tanh": (0.02, 0.04, 0.08, 0.16)}
FOUR_LAYER_BASE = {"model": "cifar-18pct", "width": 0.5, "epochs": 1, "log_every": 5, "test_every_epoch": False}

# C12 (bias 1 against bias 0, iterations to 50% training error) on the chosen design, on the pilot seeds: its
# spread sizes C12's seeds. Its crossing comes in the first epochs; every epoch is seeded from (seed, epoch) and
# the lr drops only after a plateau, so the first 8 epochs of a 40-epoch run are these runs.
CHOSEN = "8k-40"
C12_EPOCHS = 8


def design_named(name: str) -> Design:
    return next(d for d in DESIGNS if d.name == name)


def design_config(design: Design, arm: str, seed: int) -> dict[str, Any]:
    settings = {**ALEXNET_BASE, **design.settings}
    change = dict(ARMS[arm])
    if "epochs" in change:
        change["epochs"] = settings["epochs"] * change["epochs"]
    return params.resolve({**settings, **change, "seed": seed})


def c12_config(arm: plan.Arm, seed: int) -> dict[str, Any]:
    return params.resolve({**ALEXNET_BASE, **design_named(CHOSEN).settings, "epochs": C12_EPOCHS, **arm.settings, "seed": seed})


def c1_config(activation: str, lr: float, seed: int) -> dict[str, Any]:
    claim = plan.load_registry()["C1"]
    return params.resolve({**FOUR_LAYER_BASE, **claim.conditions, "activation": activation, "lr": lr, "seed": seed})


def pilot_runs(results_dir: str | Path, designs: tuple[Design, ...] = DESIGNS, c1: bool = True,
               overrides: dict[str, Any] | None = None) -> list[plan.PlannedRun]:
    """Every pilot run, seed by seed (a pilot cut short leaves whole sets of arms), into results_dir."""
    where = {"results_dir": str(results_dir), "progress": False, **(overrides or {})}
    found = []
    for rank, seed in enumerate(PILOT_SEEDS):
        for order, design in enumerate(d for d in designs if seed in d.seeds):
            for arm in ARMS:
                config = {**design_config(design, arm, seed), **where}
                found.append(plan.PlannedRun(config, "alexnet", (), (), False, (rank, order, 0),
                                             f"design {design.name}, {arm}, seed={seed}"))
        if c1:
            for arm in plan.load_registry()["C12"].arms:
                config = {**c12_config(arm, seed), **where}
                found.append(plan.PlannedRun(config, "alexnet", (), (), False, (rank, len(designs), 1),
                                             f"C12 {arm.name}, {C12_EPOCHS} epochs, seed={seed}"))
            for activation, lrs in C1_LRS.items():
                for lr in lrs:
                    config = {**c1_config(activation, lr, seed), **where}
                    found.append(plan.PlannedRun(config, "four-layer", (), (), False, (rank, len(designs), 0),
                                                 f"C1 {activation}, lr {lr:g}, seed={seed}"))
    # A pilot run that finished is kept whatever code made it (the grid would set it aside as stale).
    return [run for run in found if finished(results_dir, run.config) is None]


# ----------------------------------------------------------------------------- what the pilot shows

@dataclass(frozen=True)
class DesignResult:
    design: Design
    seeds: int  # seeds with every arm complete
    baseline_test: float  # mean final test error of the baseline
    longer_minus_baseline: float  # mean over seeds: twice as long minus the baseline (test error)
    gaps: dict[str, float]  # arm -> mean test error minus error on training images (overfitting)
    differences_sd: float  # pooled sd of the paired differences (arm minus baseline, final test error)
    differences_df: int
    train_seconds: float  # mean training + evaluation seconds of a baseline run


def design_results(results_dir: str | Path, designs: tuple[Design, ...] = DESIGNS) -> list[DesignResult]:
    return [r for r in (_design_result(results_dir, design) for design in designs) if r is not None]


def finished(results_dir: str | Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The run's record where it finished, whichever training code made it: the pilot is exploratory,
    and its records name their code (the earliest were made by an earlier, slower trainer)."""
    try:
        record = results.read_record(results.record_path(results_dir, config))
    except (OSError, ValueError):
        return None
    return record if record.get("status") == "complete" else None


def _design_result(results_dir: str | Path, design: Design) -> DesignResult | None:
    records = {arm: {} for arm in ARMS}
    for seed in design.seeds:
        for arm in ARMS:
            record = finished(results_dir, design_config(design, arm, seed))
            if record is not None:
                records[arm][seed] = record
    seeds = [seed for seed in design.seeds if all(seed in by_seed for by_seed in records.values())]
    if not seeds:
        return None
    test = {arm: {s: records[arm][s]["epochs"][-1]["test_top1_error"] for s in seeds} for arm in ARMS}
    gap = {arm: statistics.mean(records[arm][s]["epochs"][-1]["test_top1_error"]
                                - records[arm][s]["epochs"][-1]["fit_top1_error"] for s in seeds) for arm in ARMS}
    diffs = [[test[arm][s] - test["baseline"][s] for s in seeds] for arm in ARMS if arm != "baseline"]
    squares = sum(sum((d - statistics.mean(ds)) ** 2 for d in ds) for ds in diffs)
    df = sum(len(ds) - 1 for ds in diffs)
    seconds = statistics.mean(records["baseline"][s]["totals"]["train_time_s"]
                              + records["baseline"][s]["totals"]["eval_time_s"] for s in seeds)
    return DesignResult(design, len(seeds), statistics.mean(test["baseline"].values()),
                        statistics.mean(test["twice as long"][s] - test["baseline"][s] for s in seeds), gap,
                        (squares / df) ** 0.5 if df else float("nan"), df, seconds)


def c1_table(results_dir: str | Path) -> dict[tuple[str, float], list[float | None]]:
    """(activation, lr) -> per pilot seed, the iterations to C1's target (None: never reached, or not run)."""
    target = plan.load_registry()["C1"].target_train_error
    table = {}
    for activation, lrs in C1_LRS.items():
        for lr in lrs:
            row = []
            for seed in PILOT_SEEDS:
                record = finished(results_dir, c1_config(activation, lr, seed))
                crossing = smoothed_crossing(record["iterations"], target) if record else None
                row.append(crossing.iteration if crossing and crossing.reached else None)
            table[(activation, lr)] = row
    return table


def c12_table(results_dir: str | Path) -> dict[str, list[float | None]]:
    """C12's arm name -> per pilot seed, the iterations to 50% training error (None: never, or not run)."""
    claim = plan.load_registry()["C12"]
    table = {}
    for arm in claim.arms:
        row = []
        for seed in PILOT_SEEDS:
            record = finished(results_dir, c12_config(arm, seed))
            crossing = smoothed_crossing(record["iterations"], claim.target_train_error) if record else None
            row.append(crossing.iteration if crossing and crossing.reached else None)
        table[arm.name] = row
    return table


def lines(results_dir: str | Path) -> list[str]:
    """The pilot's findings, as `python -m reproduce pilot` prints them."""
    out = ["design    seeds  baseline test  2x longer - baseline  gap: baseline / no dropout / no augmentation  "
           "sd of differences (df)  s per run"]
    for r in design_results(results_dir):
        out.append(f"{r.design.name:9} {r.seeds:5}  {100 * r.baseline_test:12.2f}%  {100 * r.longer_minus_baseline:+19.2f}"
                   f"  {100 * r.gaps['baseline']:8.2f} / {100 * r.gaps['no dropout']:.2f} / "
                   f"{100 * r.gaps['no augmentation']:.2f} points{'':9}{100 * r.differences_sd:.2f} ({r.differences_df})"
                   f"{r.train_seconds:12.0f}")
    out.append("C1: iterations to 25% training error per pilot seed (smoothed; - never)")
    for (activation, lr), row in c1_table(results_dir).items():
        out.append(f"  {activation:4} lr {lr:<7g} " + "  ".join("-" if i is None else f"{i:5.0f}" for i in row))
    out.append(f"C12: iterations to 50% training error per pilot seed (smoothed; - never), {C12_EPOCHS} epochs")
    for name, row in c12_table(results_dir).items():
        out.append(f"  {name:8} " + "  ".join("-" if i is None else f"{i:5.0f}" for i in row))
    return out


def curves(results_dir: str | Path, design: Design) -> dict[str, dict[int, dict[str, Any]]]:
    """arm -> seed -> finished record, for the pilot's figure."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for arm in ARMS:
        for seed in design.seeds:
            record = finished(results_dir, design_config(design, arm, seed))
            if record is not None:
                found.setdefault(arm, {})[seed] = record
    return found


# ----------------------------------------------------------------------------- sizing the registered study


# ----------------------------------------------------------------------------- spreads from the v1 study

# The exploratory v1 study's AlexNet proxy (3 epochs on 8,000 images, 4,000 test images): its records in
# results/v1 give the spreads of C8 and C17, whose two measures of the same weights the pilot does not take
# (its runs keep no weights). The two measures move together, so their paired spread is small at either proxy;
# a net trained longer and tested on 10,000 images can only be less noisy there.
V1_DIR = "v1"
V1_ALEXNET = {**ALEXNET_BASE, "test_every_epoch": True, "epochs": 3, "train_limit": 8000, "test_limit": 4000}
V1_SEEDS = (0, 1, 2)


# ----------------------------------------------------------------------------- the ratio claims' pilot


# ----------------------------------------------------------------------------- what the registration says


