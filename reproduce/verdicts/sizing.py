"""The registration's numbers, from the pilot's records: the spread of each claim's paired differences,
the seeds each claim needs for 80% power at the family's level, what the budget affords, and the TOML
that registers them (`python -m reproduce pilot --report` prints it; tests/test_study_registration.py
recomputes it).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproduce.runs import analysis
from reproduce.spec import metrics, params, plan, run_ids
from reproduce.verdicts.pilot import (
    ARMS,
    C1_LRS,
    CHOSEN,
    PILOT_DIR,
    PILOT_SEEDS,
    V1_ALEXNET,
    V1_DIR,
    V1_SEEDS,
    Design,
    c1_config,
    c1_table,
    c12_config,
    curves,
    design_named,
    finished,
)
from reproduce.verdicts.stats import detectable_effect, sd_upper_bound, seeds_needed, smoothed_crossing


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
    found = curves(results_dir, design)
    seeds = [s for s in design.seeds if all(s in found.get(arm, {}) for arm in ARMS)]
    spread = {}
    for name, metric in metrics.METRICS.items():
        read = metric.of_epoch
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
                runs[run_ids.run_id(config)] = seconds_per_epoch[claim.network] * config["epochs"]
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


def v1_spreads(results_dir: str | Path, registry: dict[str, Any] | None = None) -> dict[str, Spread]:
    """claim id -> the spread of its per-seed paired differences in v1, for the tested "within" claims."""
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
                found = json.loads(analysis.analysis_path(v1, run_ids.run_id(config)).read_text())["measures"]
            except (OSError, ValueError, KeyError):
                continue
            values.append(found[claim.other_arm.measure] - found[claim.paper_arm.measure])
        if len(values) >= 2:
            spread[claim.id] = _spread_of(claim.id, values, f"the exploratory v1 study (results/v1), "
                                          f"{len(values)} seeds: {claim.other_arm.name} minus {claim.paper_arm.name}")
    return spread


def _spread_of(measure: str, values: list[float], source: str) -> Spread:
    sd, df = statistics.stdev(values), len(values) - 1
    return Spread(measure, sd, df, sd_upper_bound(sd, df), source)


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


STUDY_BUDGET_S = 4 * 3600  # the whole study from empty on this 2-core machine, as registered


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
