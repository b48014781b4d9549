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

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproduce import params, plan, results

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
    and its records name their code (the earliest were made before the speed work of issue 22)."""
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
    from reproduce.stats import smoothed_crossing

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
    from reproduce.stats import smoothed_crossing

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

@dataclass(frozen=True)
class Spread:
    """The spread a claim's seeds are sized on: the pilot's sd of its paired differences, and its upper bound."""
    measure: str
    sd: float
    df: int
    upper: float  # the 95% upper confidence bound: the pessimistic spread
    source: str


def spreads(results_dir: str | Path, design: Design) -> dict[str, Spread]:
    """measure -> the sd of the pilot's paired differences (an arm minus the baseline, per seed) of that
    measure: final test error, overfitting gap, error on training images."""
    from reproduce.stats import sd_upper_bound

    found = curves(results_dir, design)
    seeds = [s for s in design.seeds if all(s in found.get(arm, {}) for arm in ARMS)]
    measures = {"final_test_top1_error": lambda e: e["test_top1_error"],
                "final_fit_gap": lambda e: e["test_top1_error"] - e["fit_top1_error"],
                "final_fit_error": lambda e: e["fit_top1_error"]}
    spread = {}
    for name, read in measures.items():
        diffs = [[read(found[arm][s]["epochs"][-1]) - read(found["baseline"][s]["epochs"][-1]) for s in seeds]
                 for arm in ("no dropout", "no augmentation")]
        squares = sum(sum((d - statistics.mean(ds)) ** 2 for d in ds) for ds in diffs)
        df = sum(len(ds) - 1 for ds in diffs)
        sd = (squares / df) ** 0.5 if df else float("nan")
        spread[name] = Spread(name, sd, df, sd_upper_bound(sd, df) if df else float("nan"),
                              f"pilot design {design.name}, seeds {', '.join(map(str, seeds))}: no dropout and no "
                              "augmentation, each minus the baseline")
    return spread


@dataclass(frozen=True)
class Sizing:
    claim: str
    measure: str  # the spread it was sized on
    upper: float  # the pessimistic sd (on the log scale for ratios)
    needed: int | None  # seeds for 80% power against the threshold at the corrected level (None: beyond MOST_SEEDS)
    seeds: int  # registered: needed where affordable, else what the budget affords
    detectable: float  # the smallest effect the registered seeds detect (on the claim's scale)


def tested_claims(registry: dict[str, Any]) -> list[Any]:
    return [c for c in registry.values() if c.trains and not c.requires]


def size_claims(registry: dict[str, Any], spread_of: dict[str, Spread], affordable: dict[str, int],
                alpha: float = 0.05) -> list[Sizing]:
    """Each tested claim's registered seeds: enough for 80% power against its threshold, one-sided, at the
    Bonferroni level alpha / K of its family of K = 2 x claims hypotheses (Holm's is never stricter), with its
    pessimistic spread; no more than its network's budget affords (`affordable`: network -> seeds)."""
    import math

    from reproduce.stats import detectable_effect

    level = alpha / (2 * len(tested_claims(registry)))
    sized = []
    for claim_id, needed in seeds_needed_by_claim(registry, spread_of, alpha).items():
        claim = registry[claim_id]
        upper = spread_of[_spread_measure(claim)].upper
        seeds = max(2, min(needed or affordable[claim.network], affordable[claim.network]))
        found = detectable_effect(seeds, upper, level)
        sized.append(Sizing(claim.id, _spread_measure(claim), upper, needed, seeds,
                            math.exp(found) if claim.kind == "ratio" else found))
    return sized


def seeds_needed_by_claim(registry: dict[str, Any], spread_of: dict[str, Spread], alpha: float) -> dict[str, int | None]:
    import math

    from reproduce.stats import seeds_needed

    level = alpha / (2 * len(tested_claims(registry)))
    return {claim.id: seeds_needed(math.log(claim.threshold) if claim.kind == "ratio" else claim.threshold,
                                spread_of[_spread_measure(claim)].upper, level)
            for claim in tested_claims(registry)}


def _spread_measure(claim: Any) -> str:
    """Which of the pilot's spreads a claim is sized on: its metric's, or for a within claim or a ratio its own."""
    if claim.kind == "difference":
        return claim.metric
    return claim.id


def study_seconds(registry: dict[str, Any], seeds_of: dict[str, int], seconds_per_epoch: dict[str, float],
                  preset: str = "cpu") -> float:
    """Worker-seconds of the study's distinct runs when each claim runs seeds_of[claim id] seeds (a run shared
    by claims counts once): epochs x the network's seconds per epoch."""
    from dataclasses import replace

    runs = {}
    for claim in tested_claims(registry):
        sized = replace(claim, seeds=seeds_of[claim.id])
        for by_seed in plan.planned_runs(sized, preset, seeds_of[claim.id]).values():
            for config in by_seed.values():
                runs[results.run_id(config)] = seconds_per_epoch[claim.network] * config["epochs"]
    return sum(runs.values())


def affordable_seeds(registry: dict[str, Any], spread_of: dict[str, Spread], seconds_per_epoch: dict[str, float],
                     budget_s: float, workers: int, alpha: float = 0.05, most: int = 40) -> dict[str, int]:
    """network -> the most seeds a claim of it may take: the four-layer net's claims what they need (its runs
    are cheap), up to `most`; then the largest AlexNet cap at which the whole study fits the budget."""
    needed = seeds_needed_by_claim(registry, spread_of, alpha)
    networks = {c.id: c.network for c in tested_claims(registry)}
    cap = {"four-layer": max(2, min(most, max((n or most) for i, n in needed.items()
                                                 if networks[i] == "four-layer")))}
    best = 2
    for alexnet in range(2, most + 1):
        caps = {**cap, "alexnet": alexnet}
        seeds_of = {i: max(2, min(n or caps[networks[i]], caps[networks[i]])) for i, n in needed.items()}
        if study_seconds(registry, seeds_of, seconds_per_epoch) / workers > budget_s:
            break
        best = alexnet
    return {**cap, "alexnet": best}


def seconds_per_epoch(results_dir: str | Path) -> dict[str, float]:
    """network -> median training + evaluation seconds per epoch of the pilot's runs of the chosen design
    (AlexNet) and of C1 (the four-layer net), made two at a time on 2 cores (the median: a run that shared
    the cores with other work is slower, never faster)."""
    alexnet = [r for by_seed in curves(results_dir, design_named(CHOSEN)).values() for r in by_seed.values()]
    four = [finished(results_dir, c1_config(a, lr, s)) for a, lrs in C1_LRS.items() for lr in lrs for s in PILOT_SEEDS]

    def per_epoch(records: list[dict[str, Any]]) -> float:
        return statistics.median((r["totals"]["train_time_s"] + r["totals"]["eval_time_s"]) / r["config"]["epochs"]
                                 for r in records if r)

    return {"alexnet": per_epoch(alexnet), "four-layer": per_epoch(four)}


# ----------------------------------------------------------------------------- spreads from the v1 study

# The exploratory v1 study's AlexNet proxy (3 epochs on 8,000 images, 4,000 test images): its records in
# results/v1 give the spreads of C8 and C17, whose two measures of the same weights the pilot does not take
# (its runs keep no weights). The two measures move together, so their paired spread is small at either proxy;
# a net trained longer and tested on 10,000 images can only be less noisy there.
V1_DIR = "v1"
V1_ALEXNET = {**ALEXNET_BASE, "test_every_epoch": True, "epochs": 3, "train_limit": 8000, "test_limit": 4000}
V1_SEEDS = (0, 1, 2)


def v1_spreads(results_dir: str | Path, registry: dict[str, Any] | None = None) -> dict[str, Spread]:
    """claim id -> the spread of its per-seed paired differences in v1, for the tested "within" claims."""
    from reproduce import analysis

    registry = registry or plan.load_registry()
    v1 = Path(results_dir) / V1_DIR
    spread = {}
    for claim in registry.values():
        if claim.kind != "within" or claim.requires:
            continue
        values = []
        for seed in V1_SEEDS:
            config = params.resolve({**V1_ALEXNET, **claim.conditions, "seed": seed})
            try:
                found = json.loads(analysis.analysis_path(v1, results.run_id(config)).read_text())["measures"]
            except (OSError, ValueError, KeyError):
                continue
            values.append(found[claim.other_arm.measure] - found[claim.paper_arm.measure])
        if len(values) >= 2:
            spread[claim.id] = _spread_of(claim.id, values, f"the exploratory v1 study (results/v1), "
                                          f"{len(values)} seeds: {claim.other_arm.name} minus {claim.paper_arm.name}")
    return spread


def _spread_of(measure: str, values: list[float], source: str) -> Spread:
    from reproduce.stats import sd_upper_bound

    sd, df = statistics.stdev(values), len(values) - 1
    return Spread(measure, sd, df, sd_upper_bound(sd, df), source)


# ----------------------------------------------------------------------------- the ratio claims' pilot

def c1_choice(results_dir: str | Path) -> dict[str, float]:
    """activation -> its registered lr: the one of its grid that reached 25% in the fewest mean iterations
    (smoothed) on the pilot seeds, among those that reached it in every seed."""
    table = c1_table(results_dir)
    chosen = {}
    for activation, lrs in C1_LRS.items():
        reached = {lr: statistics.mean(table[(activation, lr)]) for lr in lrs
                   if all(i is not None for i in table[(activation, lr)])}
        if reached:
            chosen[activation] = min(reached, key=reached.get)
    return chosen


def ratio_spreads(results_dir: str | Path) -> dict[str, Spread]:
    """C1 (tanh / ReLU at their chosen lrs) and C12 (bias 0 / bias 1): the spread of the pilot's per-seed log
    ratios of iterations to the target."""
    import math

    from reproduce.stats import smoothed_crossing

    registry = plan.load_registry()
    spread = {}
    chosen = c1_choice(results_dir)
    if len(chosen) == 2:
        table = c1_table(results_dir)
        logs = [math.log(t / r) for r, t in zip(table[("relu", chosen["relu"])], table[("tanh", chosen["tanh"])])]
        spread["C1"] = _spread_of("C1", logs, f"the pilot, seeds {_seeds()}: tanh at lr {chosen['tanh']:g} / ReLU "
                                  f"at lr {chosen['relu']:g}, log ratios")
    claim = registry["C12"]
    logs = []
    for seed in PILOT_SEEDS:
        crossings = [smoothed_crossing(r["iterations"], claim.target_train_error) if r else None
                     for r in (finished(results_dir, c12_config(arm, seed)) for arm in (claim.other_arm, claim.paper_arm))]
        if all(c is not None and c.reached for c in crossings):
            logs.append(math.log(crossings[0].iteration / crossings[1].iteration))
    if len(logs) >= 2:
        spread["C12"] = _spread_of("C12", logs, f"the pilot, {len(logs)} seeds: {claim.other_arm.name} / "
                                   f"{claim.paper_arm.name}, log ratios")
    return spread


def _seeds() -> str:
    return ", ".join(map(str, PILOT_SEEDS))


# ----------------------------------------------------------------------------- what the registration says

STUDY_BUDGET_S = 4 * 3600  # issue 23: the whole study from empty on this 2-core machine
RESERVE_S = 15 * 60  # of it, for the analyses of final weights, the notebooks and the book
WORKERS = 2  # one-thread runs at once on 2 cores


@dataclass(frozen=True)
class Registration:
    spreads: dict[str, Spread]
    seconds_per_epoch: dict[str, float]
    affordable: dict[str, int]
    sizing: list[Sizing]
    c1_lrs: dict[str, float]


def registration_numbers(results_dir: str | Path, alpha: float = 0.05) -> Registration:
    """The numbers the registration takes from the committed records: spreads, costs, seeds, C1's lrs."""
    folder = Path(results_dir) / PILOT_DIR
    spread = {**spreads(folder, design_named(CHOSEN)), **ratio_spreads(folder), **v1_spreads(results_dir)}
    registry = plan.load_registry()
    cost = seconds_per_epoch(folder)
    affordable = affordable_seeds(registry, spread, cost, STUDY_BUDGET_S - RESERVE_S, WORKERS, alpha)
    return Registration(spread, cost, affordable, size_claims(registry, spread, affordable, alpha), c1_choice(folder))


def registration_toml(numbers: Registration) -> str:
    """The registration's number tables, as `python -m reproduce pilot --report` prints them for the file."""
    out = [f'seconds_per_epoch = {{ alexnet = {numbers.seconds_per_epoch["alexnet"]:.3f}, '
           f'four-layer = {numbers.seconds_per_epoch["four-layer"]:.3f} }}',
           f'affordable_seeds = {{ alexnet = {numbers.affordable["alexnet"]}, '
           f'four-layer = {numbers.affordable["four-layer"]} }}', ""]
    for measure, spread in numbers.spreads.items():
        out += [f"[spreads.{measure}]", f"sd = {spread.sd!r}", f"df = {spread.df}", f"upper = {spread.upper!r}",
                f'source = "{spread.source}"', ""]
    out += ["[seeds_needed]  # for 80% power at the Bonferroni level with the pessimistic sd; 0: more than 40"]
    out += [f"{s.claim} = {s.needed or 0}" for s in numbers.sizing]
    out += ["", "[seeds]  # registered (claims.toml: seeds)"] + [f"{s.claim} = {s.seeds}" for s in numbers.sizing]
    out += ["", "[detectable]  # the smallest effect the registered seeds detect with 80% power (the claim's scale)"]
    out += [f"{s.claim} = {s.detectable!r}" for s in numbers.sizing]
    return "\n".join(out)
