"""The claims registry's schema (reproduce/spec/claims.toml) and the runs it asks for.

Which distinct runs a preset needs, for which claims, in which order: the training side (the
grid, the notebooks' training step) reads this module and never the report's (claims, book),
which read it too. A run two claims share is planned once.

The order is a priority: what is trained first is decided first. The baseline (the preset's
AlexNet as the paper has it: the arm six claims share), then the other arms of the mission's four
named ablations (C1 ReLU vs tanh, C3 LRN, C4 overlapping pooling, C10 dropout), then the rest in
registry order; within each tier seed 0 of every arm before seed 1, so that a grid cut short by
its time budget leaves whole pairs of arms, the unit every verdict is computed from.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from reproduce.spec import metrics, params, run_ids

REGISTRY_PATH = Path(__file__).with_name("claims.toml")
KINDS = ("difference", "ratio", "within", "model", "untested")
NAMED_ABLATIONS = ("activation", "lrn", "pooling", "dropout")  # C1, C3, C4, C10: trained right after the baseline
REQUIREMENTS = {"colour": "needs colour images"}
# A difference claim's metric (reproduce.verdicts.claims computes each from a record; reproduce.verdicts.wording says each).
METRICS = tuple(metrics.METRICS)  # a difference claim's metric (reproduce.spec.metrics declares each)
# What reproduce.runs.analysis measures of a finished run's final weights: a "within" claim's arms name two.
MEASURES = ("centre_test_top1_error", "ten_crop_test_top1_error", "feature_neighbour_disagreement",
            "pixel_neighbour_disagreement", "tower_colour_gap", "random_split_colour_gap")
NOTE_KEYS = ("target_note", "threshold_note", "lr_note", "proxy_note", "seeds_note")
# How a claim's effect is estimated from its per-seed values (reproduce.verdicts.claims), named and versioned: a new
# estimator is a new name, so that changing it is a change of the registered rule, as a threshold's is.
ESTIMATORS = {
    "paired-mean-t/1": "the mean of the per-seed differences, with its Student t interval",
    "log-ratio-t/1": "the geometric mean of the per-seed ratios, with a t interval on their logs",
}
# How a ratio claim reads "iterations to a target" off a training curve (reproduce.verdicts.stats).
CROSSINGS = {
    "first-log-point/1": "the first logged iteration whose training error is at most the target",
    "smoothed-3/1": "where the mean of 3 consecutive log points first reaches the target, interpolated "
                    "between log points",
}

# What a ratio claim does with a run that never learned (registered as `chance`); without one, every run counts.
CHANCE_RULES = {
    "never-below-80/1": "a run whose training error (the mean of 3 consecutive log points) never falls below 80% "
                        "never left chance: it says nothing of its arm's speed, so its seed (both arms) is left out "
                        "of the estimate, and the runs left out are counted and reported beside it",
}
CHANCE_LEVELS = {"never-below-80/1": 0.80}


@dataclass(frozen=True)
class Arm:
    name: str
    settings: dict[str, Any]
    measure: str | None = None  # a "within" claim's arms are two measures of the same runs


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    quote: str
    section: str
    paper_value: str
    kind: str
    paper_effect: float | None = None  # the paper's number on the claim's own scale, where it gives one
    ablation: str | None = None
    network: str | None = None
    conditions: dict[str, Any] = field(default_factory=dict)
    paper_arm: Arm | None = None
    other_arm: Arm | None = None
    metric: str | None = None
    threshold: float | None = None
    target_train_error: float | None = None
    tolerance: float | None = None
    check: str | None = None
    reason: str | None = None
    requires: str | None = None
    lr_sweep: tuple[float, ...] = ()
    # Registered for a confirmatory study (reproduce/spec/registration.toml): how the effect is estimated
    # (stats' estimator, named and versioned), how a crossing is read (ratio claims), and its seeds.
    estimator: str | None = None
    crossing: str | None = None
    chance: str | None = None  # a ratio claim's rule for runs that never learned (CHANCE_RULES)
    # Where the preset's network has the settings `same_when`, this claim's arms compute exactly what claim
    # `same_as`'s do: it trains nothing of its own and takes that claim's runs and verdict (one member of the family).
    same_as: str | None = None
    same_when: dict[str, Any] = field(default_factory=dict)
    seeds: int | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def arms(self) -> tuple[Arm, ...]:
        return tuple(arm for arm in (self.paper_arm, self.other_arm) if arm is not None)

    @property
    def trains(self) -> bool:
        return self.kind in ("difference", "ratio", "within")


class RegistryError(ValueError):
    """claims.toml says something the code cannot honour."""


# ----------------------------------------------------------------------------- the registry

def load_registry(path: Path = REGISTRY_PATH) -> dict[str, Claim]:
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    return {claim_id: parse_claim(claim_id, entry) for claim_id, entry in raw.items()}


def parse_claim(claim_id: str, entry: dict[str, Any]) -> Claim:
    entry = dict(entry)
    notes = {key: entry.pop(key) for key in NOTE_KEYS if key in entry}
    metric_text = entry.pop("metric", None)
    arms = {key: _parse_arm(claim_id, entry.pop(key)) for key in ("paper_arm", "other_arm") if key in entry}
    if "lr_sweep" in entry:
        entry["lr_sweep"] = tuple(float(lr) for lr in entry["lr_sweep"])
    try:
        claim = Claim(id=claim_id, **entry, **arms, notes=notes)
    except TypeError as exc:
        raise RegistryError(f"{claim_id}: {exc}") from None
    if metric_text is not None:
        claim = _with_metric(claim, metric_text)
    _check_claim(claim)
    return claim


def _parse_arm(claim_id: str, table: dict[str, Any]) -> Arm:
    settings = {k: v for k, v in table.items() if k not in ("name", "measure")}
    try:
        params.validate(settings)
    except params.ParamError as exc:
        raise RegistryError(f"{claim_id}: arm {table.get('name')!r}: {exc}") from None
    return Arm(table["name"], settings, table.get("measure"))


def _with_metric(claim: Claim, metric_text: str) -> Claim:
    # A ratio claim describes its metric in words; a difference claim names a metric function.
    if claim.kind == "ratio":
        return replace(claim, notes={**claim.notes, "metric": metric_text})
    return replace(claim, metric=metric_text)


def _check_claim(claim: Claim) -> None:
    problems = []
    if claim.kind not in KINDS:
        problems.append(f"kind {claim.kind!r} is not one of {', '.join(KINDS)}")
    if claim.trains:
        if claim.network not in params.NETWORKS:
            problems.append(f"network {claim.network!r} is not one of {', '.join(params.NETWORKS)}")
        if len(claim.arms) != 2 or claim.threshold is None or not claim.ablation:
            problems.append("needs ablation, paper_arm, other_arm and threshold")
        try:
            params.validate(claim.conditions)
        except params.ParamError as exc:
            problems.append(f"conditions: {exc}")
    if claim.kind == "difference" and claim.metric not in METRICS:
        problems.append(f"metric {claim.metric!r} is not one of {', '.join(METRICS)}")
    if claim.kind == "within" and any(arm.measure not in MEASURES for arm in claim.arms):
        problems.append(f"each arm needs a measure, one of {', '.join(MEASURES)}")
    if claim.requires is not None and claim.requires not in REQUIREMENTS:
        problems.append(f"requires {claim.requires!r} is not one of {', '.join(REQUIREMENTS)}")
    if claim.lr_sweep and any(not 0 < lr < 10 for lr in claim.lr_sweep):
        problems.append("lr_sweep needs learning rates in (0, 10)")
    if claim.kind == "ratio" and claim.target_train_error is None:
        problems.append("a ratio claim needs target_train_error")
    if claim.kind == "untested" and not claim.reason:
        problems.append("an untested claim needs a reason")
    if claim.estimator is not None and claim.estimator not in ESTIMATORS:
        problems.append(f"estimator {claim.estimator!r} is not one of {', '.join(ESTIMATORS)}")
    if claim.crossing is not None and claim.crossing not in CROSSINGS:
        problems.append(f"crossing {claim.crossing!r} is not one of {', '.join(CROSSINGS)}")
    if claim.chance is not None and (claim.kind != "ratio" or claim.chance not in CHANCE_RULES):
        problems.append(f"chance {claim.chance!r}: a ratio claim's, one of {', '.join(CHANCE_RULES)}")
    if claim.same_when:
        try:
            params.validate(claim.same_when)
        except params.ParamError as exc:
            problems.append(f"same_when: {exc}")
    if claim.seeds is not None and claim.seeds < 2:
        problems.append("seeds: a registered claim needs at least 2")
    if problems:
        raise RegistryError(f"{claim.id}: " + "; ".join(problems))


def claims_of(ablation: str, registry: dict[str, Claim] | None = None) -> list[Claim]:
    registry = registry or load_registry()
    return [c for c in registry.values() if c.ablation == ablation]


def ablations(registry: dict[str, Claim] | None = None) -> list[str]:
    """The ablation notebooks, in registry order."""
    registry = registry or load_registry()
    return list(dict.fromkeys(c.ablation for c in registry.values() if c.ablation))


# ----------------------------------------------------------------------------- the runs a claim needs

def varied_names(claim: Claim) -> set[str]:
    return (set(claim.paper_arm.settings) | set(claim.other_arm.settings) | set(claim.conditions)
            | ({"lr"} if claim.lr_sweep else set()))


def compared_anywhere(registry: dict[str, Claim] | None = None) -> set[str]:
    """The parameters some claim varies: a record differing only in these is another claim's run."""
    if registry is None:
        return set(_compared_in(REGISTRY_PATH, REGISTRY_PATH.stat().st_mtime_ns))
    return {name for claim in registry.values() if claim.trains for name in varied_names(claim)}


@lru_cache(maxsize=4)
def _compared_in(path: Path, modified: int) -> frozenset[str]:
    """compared_anywhere of the registry file as last modified (read once per version of the file)."""
    return frozenset(compared_anywhere(load_registry(path)))


def arm_config(claim: Claim, arm: Arm, preset: str, seed: int,
               overrides: dict[str, Any] | None = None, lr: float | None = None) -> dict[str, Any]:
    """The full config of one run: the preset's network, the user's overrides, then the claim's
    conditions and the arm (which the user may not override: they are what is compared)."""
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & (varied_names(claim) | {"seed"}))
    if clash:
        hint = "; the number of seeds per arm is `seeds`" if "seed" in clash else ""
        raise params.ParamError(f"{', '.join(clash)}: fixed by claim {claim.id} (its arms, conditions and "
                                f"seeds); it cannot be overridden here{hint}")
    settings = {**overrides, **claim.conditions, **arm.settings, "seed": seed}
    if lr is not None:
        settings["lr"] = lr
    return params.resolve(settings, preset=preset, network=claim.network)


def sweep_label(arm: Arm, lr: float) -> str:
    return f"{arm.name}, lr {lr:g}"


def arm_variants(claim: Claim) -> list[tuple[Arm, float | None, str]]:
    """(arm, lr, label) of each set of runs: one per arm, or one per arm and lr of the sweep."""
    if not claim.lr_sweep:
        return [(arm, None, arm.name) for arm in claim.arms]
    return [(arm, lr, sweep_label(arm, lr)) for arm in claim.arms for lr in claim.lr_sweep]


def untestable_reason(claim: Claim, preset: str, overrides: dict[str, Any] | None = None) -> str | None:
    """Why the claim cannot be tested on this preset's data (a colour claim on greyscale), or None."""
    if claim.requires != "colour" or not claim.trains:
        return None
    dataset = params.resolve(overrides or {}, preset=preset, network=claim.network)["dataset"]
    if params.DATASETS[dataset] == 3:
        return None
    return (f"{REQUIREMENTS[claim.requires]}: {dataset} is greyscale; the {claim.ablation} notebook runs it "
            "with dataset cifar10 or on the paper preset's ImageNet folder")


def shares_runs(claim: Claim, preset: str, overrides: dict[str, Any] | None = None) -> str | None:
    """The claim whose runs and verdict this one takes at this preset (its `same_as`, where the preset's network
    has the settings `same_when`), or None."""
    if claim.same_as is None or not claim.network:
        return None
    network = params.resolve(overrides or {}, preset=preset, network=claim.network)
    return claim.same_as if all(network[k] == v for k, v in claim.same_when.items()) else None


def claim_seeds(claim: Claim, preset: str, seeds: int) -> list[int]:
    """The seeds of a claim's runs at this preset: its registered number, or fewer when `seeds` is fewer
    (a preliminary look), counted from the preset's first seed (so never the pilot's)."""
    first = params.get_preset(preset).first_seed
    return list(range(first, first + (min(seeds, claim.seeds) if claim.seeds else seeds)))


def planned_runs(claim: Claim, preset: str, seeds: int,
                 overrides: dict[str, Any] | None = None) -> dict[str, dict[int, dict[str, Any]]]:
    """label -> seed -> config, for the claim's seeds (claim_seeds; labels: see arm_variants); nothing
    when the claim cannot be tested on the preset's data."""
    if untestable_reason(claim, preset, overrides) or shares_runs(claim, preset, overrides):
        return {}
    return {label: {seed: arm_config(claim, arm, preset, seed, overrides, lr)
                    for seed in claim_seeds(claim, preset, seeds)}
            for arm, lr, label in arm_variants(claim)}


# ----------------------------------------------------------------------------- a preset's grid of runs

@dataclass(frozen=True)
class PlannedRun:
    """One distinct run of a grid: its config, the claims that use it, and its place in the order."""
    config: dict[str, Any]
    network: str
    claims: tuple[str, ...]
    ablations: tuple[str, ...]
    analyse: bool  # a "within" claim measures its final weights (reproduce.runs.analysis)
    priority: tuple[int, int, int]
    settings: str = ""  # what tells it apart from its preset's network (describe_run)

    @property
    def run_id(self) -> str:
        return run_ids.run_id(self.config)


def parse_only(only: str | list[str] | tuple[str, ...] | None, registry: dict[str, Claim] | None = None) -> list[str]:
    """The ablations named by --only (comma-separated), checked against the registry; all when empty."""
    known = ablations(registry)
    names = only.split(",") if isinstance(only, str) else list(only or [])
    wanted = [name.strip() for name in names if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise params.ParamError(f"only: {unknown[0]!r} is not allowed; expected one or more of {', '.join(known)}")
    return wanted or known


def grid_plan(preset: str, seeds: int, only: str | list[str] | None = None,
              overrides: dict[str, Any] | None = None) -> list[PlannedRun]:
    """Every distinct run the chosen ablations' claims need at this preset, in priority order; the
    whole grid of a preset that has the seeds' d2l recipe starts with its one run."""
    registry = load_registry()
    wanted = parse_only(only, registry)
    first = [d2l_run(preset, overrides)] if not only and params.D2L_NETWORK in params.get_preset(preset).networks \
        else []
    found: dict[str, dict[str, Any]] = {}
    for order, claim in enumerate(registry.values()):
        if not claim.trains or claim.ablation not in wanted:
            continue
        for by_seed in planned_runs(claim, preset, seeds, overrides).values():
            for seed, config in by_seed.items():
                entry = found.setdefault(run_ids.run_id(config), {
                    "config": config, "network": claim.network, "claims": [], "ablations": [], "analyse": False,
                    "priority": (_tier(claim, config, preset, overrides), seed, order)})
                entry["priority"] = min(entry["priority"], (_tier(claim, config, preset, overrides), seed, order))
    # Every claim a planned run serves, the ones not chosen too: a run trained for one ablation whose final
    # weights another ablation measures is measured before the grid deletes its checkpoint.
    for claim in registry.values():
        for run_id in _run_ids(claim, preset, seeds, overrides) & found.keys():
            found[run_id]["claims"].append(claim.id)
            found[run_id]["ablations"].append(claim.ablation)
            found[run_id]["analyse"] |= claim.kind == "within"
    runs = [PlannedRun(e["config"], e["network"], tuple(dict.fromkeys(e["claims"])),
                       tuple(dict.fromkeys(e["ablations"])), e["analyse"], e["priority"],
                       describe_run(e["config"], params.resolve(overrides, preset=preset, network=e["network"])))
            for e in found.values()]
    return first + sorted(runs, key=lambda run: run.priority)


def _run_ids(claim: Claim, preset: str, seeds: int, overrides: dict[str, Any] | None) -> set[str]:
    """The ids of the runs a claim needs; none where the overrides fix what it compares."""
    if not claim.trains:
        return set()
    try:
        planned = planned_runs(claim, preset, seeds, overrides)
    except params.ParamError:
        return set()
    return {run_ids.run_id(config) for by_seed in planned.values() for config in by_seed.values()}


def d2l_run(preset: str, overrides: dict[str, Any] | None = None) -> PlannedRun:
    """The seeds' d2l recipe at this preset: one run (seed 0), before the baseline."""
    config = params.resolve({**(overrides or {}), "seed": 0}, preset=preset, network=params.D2L_NETWORK)
    return PlannedRun(config, params.D2L_NETWORK, (), (), False, (-1, 0, 0), describe_run(config, config))


def _tier(claim: Claim, config: dict[str, Any], preset: str, overrides: dict[str, Any] | None) -> int:
    baseline = params.resolve({**(overrides or {}), "seed": config["seed"]}, preset=preset, network="alexnet")
    if config == baseline:
        return 0
    return 1 if claim.ablation in NAMED_ABLATIONS else 2


def describe_run(config: dict[str, Any], baseline: dict[str, Any] | None = None, seed: bool = True) -> str:
    """The settings that tell a run apart, for progress lines, tables and the run pages: its model, then
    each parameter some claim compares (compared_anywhere, so a new claim's switch is named without a
    list to update) where the run differs from `baseline` (the preset's network; the paper's defaults
    when not given), then its seed."""
    baseline = baseline or params.defaults()
    compared = compared_anywhere()
    shown = [name for name in params.BY_NAME if name in compared and config[name] != baseline[name]]
    words = [f"model={config['model']}"] + [f"{name}={params.show_value(config[name])}" for name in shown]
    return " ".join(words + ([f"seed={config['seed']}"] if seed else []))
