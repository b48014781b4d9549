"""The registration's numbers (study v3), from committed records: the spread of each claim's paired differences,
the seeds each claim needs for 80% power at the family's first level, what the budget affords, and the TOML that
registers them (`python -m reproduce pilot --report` prints it; tests/test_study_registration.py recomputes it).

Where the numbers come from: the v3 pilot (reproduce/verdicts/pilot_v3.py) for every claim whose design it
changed - the AlexNet arms under the chosen design, C1 and C12; study v2's confirmatory records (results/v2,
exploratory now) for the two "within" claims, C8 and C17, which measure the baseline's final weights and which
v2 decided by far more than their thresholds.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reproduce.spec import plan, run_ids
from reproduce.verdicts import pilot_v3
from reproduce.verdicts.pilot import PILOT_DIR, finished
from reproduce.verdicts.stats import detectable_effect, sd_upper_bound, seeds_needed, smoothed_crossing

V2_VERDICTS = Path("v2") / "verdicts.json"  # under the results folder
STUDY_BUDGET_S = 6 * 3600  # the whole study from empty on this 2-core machine (issue 31)
RESERVE_S = 15 * 60  # of it, for the analyses of final weights, the notebooks and the book
WORKERS = 2  # one-thread runs at once on 2 cores
MOST_SEEDS = 40


@dataclass(frozen=True)
class Spread:
    """The spread a claim's seeds are sized on: the sd of its paired differences, and its upper bound."""
    measure: str
    sd: float
    df: int
    upper: float  # the 95% upper confidence bound: the pessimistic spread
    source: str


def _spread_of(measure: str, values: list[float], source: str) -> Spread:
    sd, df = statistics.stdev(values), len(values) - 1
    return Spread(measure, sd, df, sd_upper_bound(sd, df), source)


def difference_spreads(folder: str | Path) -> dict[str, Spread]:
    """metric -> the sd of the chosen design's paired differences (other arm minus the paper's, per pilot seed),
    pooled over the difference claims that compare that metric."""
    design = pilot_v3.CHOSEN
    records = pilot_v3.alexnet_records(folder, design)
    found = {}
    for pooled in pilot_v3.paired_spreads(records, pilot_v3.claim_pairs(design)):
        if pooled.df:
            found[pooled.metric] = Spread(pooled.metric, pooled.sd, pooled.df, sd_upper_bound(pooled.sd, pooled.df),
                                          f"v3 pilot ({design.name}), seeds {_seeds()}: "
                                          f"{', '.join(pooled.claims)}, pooled")
    return found


def within_spreads(results_dir: str | Path, registry: dict[str, Any]) -> dict[str, Spread]:
    """claim id -> the spread of its per-seed differences in study v2, for the tested "within" claims."""
    path = Path(results_dir) / V2_VERDICTS
    if not path.exists():
        return {}
    frozen = json.loads(path.read_text())["claims"]
    found = {}
    for claim in tested_claims(registry):
        per_seed = frozen.get(claim.id, {}).get("per_seed")
        if claim.kind != "within" or not per_seed:
            continue
        other, paper = per_seed[claim.other_arm.name], per_seed[claim.paper_arm.name]
        values = [other[seed] - paper[seed] for seed in other if seed in paper]
        found[claim.id] = _spread_of(claim.id, values, f"study v2's confirmatory runs (results/v2), {len(values)} "
                                     f"seeds: {claim.other_arm.name} minus {claim.paper_arm.name}")
    return found


def c1_choice(folder: str | Path) -> dict[str, float]:
    """activation -> its lr: the one of its grid that reached v3's target in the fewest mean iterations (smoothed)
    on both pilots' seeds (C1_SEEDS), among those that left chance and reached it in every seed."""
    target = pilot_v3.c1_target(folder)
    if target is None:
        return {}
    chosen = {}
    for activation, lrs in pilot_v3.C1_LRS.items():
        means = {}
        for lr in lrs:
            crossings = [_crossing(finished(folder, pilot_v3.c1_config(activation, lr, s)), target[0])
                         for s in pilot_v3.C1_SEEDS]
            if all(c is not None for c in crossings):
                means[lr] = statistics.mean(crossings)
        if means:
            chosen[activation] = min(means, key=means.get)
    return chosen


def _crossing(record: dict[str, Any] | None, target: float) -> float | None:
    """Iterations to the target, or None: not run, never left chance, or never reached it."""
    if record is None or not pilot_v3.left_chance(record):
        return None
    found = smoothed_crossing(record["iterations"], target)
    return found.iteration if found.reached else None


def ratio_spreads(folder: str | Path, registry: dict[str, Any]) -> dict[str, Spread]:
    """C1 (tanh / ReLU at their chosen lrs, to the v3 target) and C12 (bias 0 / bias 1, to 50%): the spread of
    the pilot's per-seed log ratios of iterations to the target, over the seeds where both reached it."""
    spread = {}
    chosen, target = c1_choice(folder), pilot_v3.c1_target(folder)
    if len(chosen) == 2:
        logs = []
        for seed in pilot_v3.C1_SEEDS:
            relu, tanh = (_crossing(finished(folder, pilot_v3.c1_config(a, chosen[a], seed)), target[0])
                          for a in ("relu", "tanh"))
            logs.append(math.log(tanh / relu))
        spread["C1"] = _spread_of("C1", logs, f"both pilots, seeds {', '.join(map(str, pilot_v3.C1_SEEDS))}: tanh at "
                                  f"lr {chosen['tanh']:g} / ReLU at lr {chosen['relu']:g}, log ratios at v3's target")
    claim = registry["C12"]
    logs = []
    for seed in pilot_v3.PILOT_SEEDS:
        slow, fast = (_crossing(finished(folder, pilot_v3.c12_config(arm, seed)), claim.target_train_error)
                      for arm in (claim.other_arm, claim.paper_arm))
        if slow and fast:
            logs.append(math.log(slow / fast))
    if len(logs) >= 2:
        spread["C12"] = _spread_of("C12", logs, f"v3 pilot ({pilot_v3.CHOSEN.name}, {pilot_v3.C12_EPOCHS} epochs), "
                                   f"the {len(logs)} seeds where both arms reached 50%: {claim.other_arm.name} / "
                                   f"{claim.paper_arm.name}, log ratios")
    return spread


def _seeds() -> str:
    return ", ".join(map(str, pilot_v3.PILOT_SEEDS))


# ----------------------------------------------------------------------------- seeds and budget

@dataclass(frozen=True)
class Sizing:
    claim: str
    measure: str  # the spread it was sized on
    upper: float  # the pessimistic sd (on the log scale for ratios)
    needed: int | None  # seeds for 80% power against the threshold at the first level (None: beyond MOST_SEEDS)
    seeds: int  # registered: needed where affordable, else what the budget affords
    detectable: float  # the smallest effect the registered seeds detect (on the claim's scale)


def tested_claims(registry: dict[str, Any], preset: str = "cpu") -> list[Any]:
    """The family's members: each trained claim the preset can test, once (a claim that takes another's runs,
    plan.shares_runs, is that claim's member)."""
    return [c for c in registry.values() if c.trains and not c.requires and not plan.shares_runs(c, preset)]


def first_level(registry: dict[str, Any], alpha: float) -> float:
    """The constrained Holm's first step: alpha over the family's claims (each holds at most one true null)."""
    return alpha / len(tested_claims(registry))


def spread_measure(claim: Any) -> str:
    """Which spread a claim is sized on: its metric's, or for a within claim or a ratio its own."""
    return claim.metric if claim.kind == "difference" else claim.id


def _effect(claim: Any) -> float:
    return math.log(claim.threshold) if claim.kind == "ratio" else claim.threshold


def seeds_needed_by_claim(registry: dict[str, Any], spread_of: dict[str, Spread], alpha: float) -> dict[str, int | None]:
    level = first_level(registry, alpha)
    return {c.id: seeds_needed(_effect(c), spread_of[spread_measure(c)].upper, level, most=MOST_SEEDS)
            for c in tested_claims(registry)}


def size_claims(registry: dict[str, Any], spread_of: dict[str, Spread], seeds_of: dict[str, int],
                alpha: float = 0.05) -> list[Sizing]:
    """Each tested claim's registered seeds (`seeds_of`, allocate_seeds'), what it needed for 80% power against
    its threshold at the first level of the constrained Holm with its pessimistic spread, and the smallest
    effect its seeds detect."""
    level = first_level(registry, alpha)
    sized = []
    for claim_id, needed in seeds_needed_by_claim(registry, spread_of, alpha).items():
        claim = registry[claim_id]
        upper = spread_of[spread_measure(claim)].upper
        found = detectable_effect(seeds_of[claim_id], upper, level)
        sized.append(Sizing(claim.id, spread_measure(claim), upper, needed, seeds_of[claim_id],
                            math.exp(found) if claim.kind == "ratio" else found))
    return sized


def study_seconds(registry: dict[str, Any], seeds_of: dict[str, int], seconds_per_epoch: dict[str, float],
                  preset: str = "cpu") -> float:
    """Worker-seconds of the study's distinct runs when each claim runs seeds_of[claim id] seeds (a run shared
    by claims counts once): epochs x the network's seconds per epoch."""
    runs = {}
    for claim in tested_claims(registry, preset):
        sized = replace(claim, seeds=seeds_of[claim.id])
        for by_seed in plan.planned_runs(sized, preset, seeds_of[claim.id]).values():
            for config in by_seed.values():
                runs[run_ids.run_id(config)] = seconds_per_epoch[claim.network] * config["epochs"]
    return sum(runs.values())


def allocate_seeds(registry: dict[str, Any], spread_of: dict[str, Spread], seconds_per_epoch: dict[str, float],
                   budget_s: float, workers: int, alpha: float = 0.05, least: int = 3) -> dict[str, int]:
    """claim id -> its seeds. Claims get the seeds they need for 80% power (seeds_needed_by_claim), the cheapest
    next each time, priced by what it adds to the runs funded so far (a claim whose runs another's already pay
    for is free), each one only while the whole study still fits the budget; the claims left over (they need
    more than the budget has, or than MOST_SEEDS) share what remains, the most seeds each that fits, at least
    `least`. The most claims decidable against their thresholds, and a chance for the rest where the effect is
    large."""
    needed = seeds_needed_by_claim(registry, spread_of, alpha)
    seeds_of = {claim_id: least for claim_id in needed}

    def fits(trial: dict[str, int]) -> bool:
        return study_seconds(registry, trial, seconds_per_epoch) / workers <= budget_s

    def funded_with(claim_id: str) -> dict[str, int]:
        return {**seeds_of, claim_id: max(least, needed[claim_id])}

    waiting = {claim_id for claim_id, n in needed.items() if n}
    while True:
        priced = sorted((study_seconds(registry, funded_with(c), seconds_per_epoch), c) for c in waiting)
        affordable = [c for seconds, c in priced if seconds / workers <= budget_s]
        if not affordable:
            break
        seeds_of = funded_with(affordable[0])
        waiting.discard(affordable[0])
    rest = [claim_id for claim_id in needed if claim_id in waiting or not needed[claim_id]]
    for cap in range(least + 1, MOST_SEEDS + 1):
        trial = {**seeds_of, **{claim_id: cap for claim_id in rest}}
        if not fits(trial):
            break
        seeds_of = trial
    return seeds_of


def seconds_per_epoch(folder: str | Path) -> dict[str, float]:
    """network -> median training + evaluation seconds per epoch of the pilot's runs of the chosen design
    (AlexNet) and of C1 (the four-layer net), made two at a time on 2 cores (the median: a run that shared
    the cores with other work is slower, never faster)."""
    alexnet = [r for by_seed in pilot_v3.alexnet_records(folder).values() for r in by_seed.values()]
    four = [finished(folder, pilot_v3.c1_config(a, lr, s)) for a, lrs in pilot_v3.C1_LRS.items() for lr in lrs
            for s in pilot_v3.PILOT_SEEDS]

    def per_epoch(records: list[dict[str, Any] | None]) -> float:
        return statistics.median((r["totals"]["train_time_s"] + r["totals"]["eval_time_s"]) / r["config"]["epochs"]
                                 for r in records if r)

    return {"alexnet": per_epoch(alexnet), "four-layer": per_epoch(four)}


@dataclass(frozen=True)
class Registration:
    spreads: dict[str, Spread]
    seconds_per_epoch: dict[str, float]
    sizing: list[Sizing]
    study_hours: float  # the registered runs' worker-seconds over WORKERS, in hours
    c1_lrs: dict[str, float]
    c1_target: float


def registration_numbers(results_dir: str | Path, alpha: float = 0.05) -> Registration:
    """The numbers the registration takes from the committed records: spreads, costs, seeds, C1's lrs and target."""
    folder = Path(results_dir) / PILOT_DIR
    registry = plan.load_registry()
    spread = {**difference_spreads(folder), **ratio_spreads(folder, registry), **within_spreads(results_dir, registry)}
    cost = seconds_per_epoch(folder)
    seeds_of = allocate_seeds(registry, spread, cost, STUDY_BUDGET_S - RESERVE_S, WORKERS, alpha)
    hours = study_seconds(registry, seeds_of, cost) / WORKERS / 3600
    return Registration(spread, cost, size_claims(registry, spread, seeds_of, alpha), hours, c1_choice(folder),
                        pilot_v3.c1_target(folder)[0])


def registration_toml(numbers: Registration) -> str:
    """The registration's number tables, as `python -m reproduce pilot --report` prints them for the file."""
    out = [f'seconds_per_epoch = {{ alexnet = {numbers.seconds_per_epoch["alexnet"]:.3f}, '
           f'four-layer = {numbers.seconds_per_epoch["four-layer"]:.3f} }}',
           f"study_hours = {numbers.study_hours:.2f}  # the registered runs on {WORKERS} cores, from empty",
           f"c1_target = {round(numbers.c1_target, 4)!r}",
           f"open_by_design = {open_by_design(numbers)!r}  # fewer seeds than 80% power against the threshold needs", ""]
    for measure, spread in numbers.spreads.items():
        out += [f"[spreads.{measure}]", f"sd = {spread.sd!r}", f"df = {spread.df}", f"upper = {spread.upper!r}",
                f'source = "{spread.source}"', ""]
    out += [f"[seeds_needed]  # for 80% power at the first level with the pessimistic sd; 0: more than {MOST_SEEDS}"]
    out += [f"{s.claim} = {s.needed or 0}" for s in numbers.sizing]
    out += ["", "[seeds]  # registered (claims.toml: seeds)"] + [f"{s.claim} = {s.seeds}" for s in numbers.sizing]
    out += ["", "[detectable]  # the smallest effect the registered seeds detect with 80% power (the claim's scale)"]
    out += [f"{s.claim} = {s.detectable!r}" for s in numbers.sizing]
    return "\n".join(out)


def open_by_design(numbers: Registration) -> list[str]:
    """The claims the budget cannot give 80% power against their thresholds: decided only if their effect is far
    from the threshold (at least the detectable effect away from it)."""
    return [s.claim for s in numbers.sizing if s.needed is None or s.needed > s.seeds]
