"""The claims registry (claims.toml): loading it, the runs each claim needs, and its verdict.

A verdict is decided by the claim's rule in the registry, from the run records alone. When the
runs are missing, unfinished, failed or made by other training code, the claim says so instead
of a verdict: a number is never shown without the runs that back it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from reproduce import analysis, architecture, params, results, stats
from reproduce.analysis import MEASURES as MEASURE_WORDS
from reproduce.data import CHANNELS

REGISTRY_PATH = Path(__file__).with_name("claims.toml")
KINDS = ("difference", "ratio", "within", "model", "untested")
VERDICTS = ("reproduced", "consistent with the paper", "not reproduced", "inconclusive", "not tested here")
# What a claim shows instead of a verdict when its evidence is not all there.
NO_VERDICT = ("not run", "incomplete", "failed", "stale")


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
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def arms(self) -> tuple[Arm, ...]:
        return tuple(arm for arm in (self.paper_arm, self.other_arm) if arm is not None)

    @property
    def trains(self) -> bool:
        return self.kind in ("difference", "ratio", "within")


class RegistryError(ValueError):
    """claims.toml says something the code cannot honour."""


_NOTE_KEYS = ("target_note", "threshold_note", "lr_note", "proxy_note")
REQUIREMENTS = {"colour": "needs colour images"}


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, Claim]:
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    return {claim_id: _parse_claim(claim_id, entry) for claim_id, entry in raw.items()}


def _parse_claim(claim_id: str, entry: dict[str, Any]) -> Claim:
    entry = dict(entry)
    notes = {key: entry.pop(key) for key in _NOTE_KEYS if key in entry}
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
    if claim.kind == "within" and any(arm.measure not in MEASURE_WORDS for arm in claim.arms):
        problems.append(f"each arm needs a measure, one of {', '.join(MEASURE_WORDS)}")
    if claim.requires is not None and claim.requires not in REQUIREMENTS:
        problems.append(f"requires {claim.requires!r} is not one of {', '.join(REQUIREMENTS)}")
    if claim.lr_sweep and any(not 0 < lr < 10 for lr in claim.lr_sweep):
        problems.append("lr_sweep needs learning rates in (0, 10)")
    if claim.kind == "ratio" and claim.target_train_error is None:
        problems.append("a ratio claim needs target_train_error")
    if claim.kind == "untested" and not claim.reason:
        problems.append("an untested claim needs a reason")
    if problems:
        raise RegistryError(f"{claim.id}: " + "; ".join(problems))


# ----------------------------------------------------------------------------- runs a claim needs

def varied_names(claim: Claim) -> set[str]:
    return (set(claim.paper_arm.settings) | set(claim.other_arm.settings) | set(claim.conditions)
            | ({"lr"} if claim.lr_sweep else set()))


def arm_config(claim: Claim, arm: Arm, preset: str, seed: int,
               overrides: dict[str, Any] | None = None, lr: float | None = None) -> dict[str, Any]:
    """The full config of one run: the preset's network, the user's overrides, then the claim's
    conditions and the arm (which the user may not override: they are what is compared)."""
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & (varied_names(claim) | {"seed"}))
    if clash:
        raise params.ParamError(f"{', '.join(clash)}: fixed by claim {claim.id} (its arms, conditions and "
                                "seeds 0..N-1); it cannot be overridden here")
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
    if CHANNELS[dataset] == 3:
        return None
    return (f"{REQUIREMENTS[claim.requires]}: {dataset} is greyscale; the {claim.ablation} notebook runs it "
            "with dataset cifar10 or on the paper preset's ImageNet folder")


def planned_runs(claim: Claim, preset: str, seeds: int,
                 overrides: dict[str, Any] | None = None) -> dict[str, dict[int, dict[str, Any]]]:
    """label -> seed -> config, for the seeds 0 .. seeds-1 (labels: see arm_variants); nothing when
    the claim cannot be tested on the preset's data."""
    if untestable_reason(claim, preset, overrides):
        return {}
    return {label: {seed: arm_config(claim, arm, preset, seed, overrides, lr) for seed in range(seeds)}
            for arm, lr, label in arm_variants(claim)}


# ----------------------------------------------------------------------------- metrics of a record

def final_test_error(record: dict[str, Any]) -> float:
    return record["epochs"][-1]["test_top1_error"]


def final_fit_error(record: dict[str, Any]) -> float:
    return record["epochs"][-1]["fit_top1_error"]


def final_fit_gap(record: dict[str, Any]) -> float:
    """Test error minus the error on training images seen as test images: overfitting."""
    last = record["epochs"][-1]
    return last["test_top1_error"] - last["fit_top1_error"]


METRICS: dict[str, Callable[[dict[str, Any]], float]] = {
    "final_test_top1_error": final_test_error,
    "final_fit_gap": final_fit_gap,
    "final_fit_error": final_fit_error,
}
METRIC_WORDS = {
    "final_test_top1_error": "top-1 test error after the last epoch",
    "final_fit_error": "top-1 error on training images (centre view, no dropout) after the last epoch",
    "final_fit_gap": "test error minus training error after the last epoch (overfitting)",
}


# ----------------------------------------------------------------------------- verdicts

@dataclass
class Outcome:
    """A claim's verdict (or why there is none) and the numbers behind it."""
    claim: Claim
    verdict: str
    summary: str = ""
    interval: stats.Interval | None = None
    seeds_needed: int | None = None
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    censored: bool = False
    chosen: dict[str, str] = field(default_factory=dict)  # lr sweeps: arm name -> label of its best lr

    @property
    def short(self) -> str:
        """The estimate, its 95% interval and n, for a table at a glance."""
        i = self.interval
        if i is None:
            return self.summary  # why there is no number: missing runs, or why it is not tested here
        if self.claim.kind == "ratio":
            bound = ">= " if self.censored else ""
            return f"{bound}{i.estimate:.2f}x [{i.low:.2f}, {i.high:.2f}], n={i.n}"
        return f"{_points(i.estimate)} pts [{_points(i.low)}, {_points(i.high)}], n={i.n}"


def decide(interval: stats.Interval, null: float, threshold: float, lower_bound: bool = False) -> str:
    """The registry's rule: see the comment at the top of claims.toml. With `lower_bound` (runs that
    never reached C1's target), the true effect may be larger than measured: it can be reproduced,
    but never called smaller than the declared size or ruled out."""
    if interval.n < 2 or math.isnan(interval.low):
        return "inconclusive"
    if interval.low > null and interval.estimate >= threshold:
        return "reproduced"
    if lower_bound:
        return "inconclusive"
    if interval.low > null:
        return "consistent with the paper"
    if interval.high < threshold:
        return "not reproduced"
    return "inconclusive"


def needed_seeds(interval: stats.Interval, null: float, threshold: float) -> int | None:
    """Seeds for the interval, at the observed spread, to clear the nearer decision boundary."""
    if math.isnan(interval.sd):
        return None
    toward_effect = interval.estimate >= (null + threshold) / 2
    margin = interval.estimate - null if toward_effect else threshold - interval.estimate
    return stats.seeds_needed(interval.estimate, interval.sd, margin)


def evaluate(claim: Claim, preset: str, seeds: int, results_dir: str | Path = "results",
             overrides: dict[str, Any] | None = None) -> Outcome:
    if claim.kind == "untested":
        return Outcome(claim, "not tested here", claim.reason or "")
    if claim.kind == "model":
        return _evaluate_model(claim, results_dir)
    reason = untestable_reason(claim, preset, overrides)
    if reason:
        return Outcome(claim, "not tested here", reason)
    records, outcome = _gather(claim, preset, seeds, results_dir, overrides)
    if outcome is not None:
        return outcome
    if claim.kind == "ratio":
        return _evaluate_ratio(claim, records)
    if claim.kind == "within":
        return _evaluate_within(claim, records)
    return _evaluate_difference(claim, records)


def _gather(claim: Claim, preset: str, seeds: int, results_dir: str | Path,
            overrides: dict[str, Any] | None) -> tuple[dict[str, dict[int, dict]], Outcome | None]:
    """The complete, current records of every planned run (with their analysis, for a claim that
    measures final weights), or an Outcome saying what is wrong."""
    records: dict[str, dict[int, dict]] = {}
    problems, ids, states = [], [], set()
    current = results.training_digest()
    fixed = varied_names(claim) | {"seed"} | set(params.get_preset(preset).networks[claim.network]) | set(
        overrides or {})
    existing = _readable_records(results_dir)
    for label, by_seed in planned_runs(claim, preset, seeds, overrides).items():
        records[label] = {}
        for seed, config in by_seed.items():
            ids.append(results.run_id(config))
            state, record = _run_state(results_dir, config, current)
            if state == "not run":
                state, record = _earlier_version(config, fixed, existing)
            if state == "complete" and claim.kind == "within":
                state, record = _with_analysis(results_dir, record)
            states.add(state)
            if state == "complete":
                records[label][seed] = record
            else:
                problems.append(f"{label}, seed {seed}: {state}" + (f" ({record['error']})"
                                                                     if record and record.get("error") else ""))
    if problems:
        return records, Outcome(claim, _missing_verdict(states), "; ".join(problems),
                                run_ids=list(dict.fromkeys(ids)), problems=problems)
    return records, None


def _with_analysis(results_dir: str | Path, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    found = analysis.load(results_dir, record)
    if found is None:
        return "not analysed", {"error": f"no current analysis of {record['run_id']}: run the "
                                         "features notebook (or python -m reproduce ablation features)"}
    return "complete", {**record, "analysis": found}


def _missing_verdict(states: set[str]) -> str:
    if "failed" in states:
        return "failed"
    if "diverged" in states and states <= {"complete", "diverged"}:
        return "inconclusive"  # every run finished, but a diverged one leaves a pair without a value
    if "stale" in states:
        return "stale"
    if "not analysed" in states and states <= {"complete", "not analysed"}:
        return "incomplete"
    return "not run" if states == {"not run"} else "incomplete"


def _run_state(results_dir: str | Path, config: dict[str, Any], current_digest: str) -> tuple[str, dict | None]:
    path = results.record_path(results_dir, config)
    if not path.exists():
        return "not run", None
    try:
        record = results.read_record(path)
    except (OSError, ValueError):
        return "failed", {"error": f"unreadable record {path.name}"}
    status = record.get("status")
    if status == "failed":
        return "failed", record
    if status == "diverged":  # a result, not a crash: but it has no final error to compare
        return "diverged", record
    if status != "complete":
        return "running", record
    if (record.get("code") or {}).get("training_sha256") != current_digest:
        return "stale", {"error": "made by other training code than the current"}
    return "complete", record


def _readable_records(results_dir: str | Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(results.runs_dir(results_dir).glob("*.json")):
        try:
            found.append(results.read_record(path))
        except (OSError, ValueError):
            continue  # named by the book's list of unreadable records
    return found


def _earlier_version(config: dict[str, Any], fixed: set[str],
                     existing: list[dict[str, Any]]) -> tuple[str, dict | None]:
    """"stale" when a record of this run exists under other defaults: the same arm, conditions,
    preset settings and seed, other values elsewhere (a default that changed since); else "not run"."""
    wanted = params.result_config(config)
    for record in existing:
        theirs = record.get("config") or {}
        if any(theirs.get(name) != wanted[name] for name in fixed if name in wanted):
            continue
        changed = [name for name in wanted if theirs.get(name) != wanted[name]]
        if changed and not set(changed) <= compared_anywhere():  # else: another claim's arm, not a changed default
            shown = ", ".join(f"{name} {params.show_value(theirs.get(name))} (now {params.show_value(wanted[name])})"
                              for name in changed)
            return "stale", {"error": f"{record.get('run_id')} was made with other parameters: {shown}"}
    return "not run", None


def compared_anywhere() -> set[str]:
    """The parameters some claim varies: a record differing only in these is another claim's run."""
    return {name for claim in load_registry().values() if claim.trains for name in varied_names(claim)}


def _evaluate_difference(claim: Claim, records: dict[str, dict[int, dict]]) -> Outcome:
    metric = METRICS[claim.metric]
    per_seed = {arm: {seed: metric(r) for seed, r in by_seed.items()} for arm, by_seed in records.items()}
    effect = stats.paired_difference(per_seed[claim.other_arm.name], per_seed[claim.paper_arm.name])
    verdict = decide(effect, 0.0, claim.threshold)
    summary = (f"{claim.other_arm.name} minus {claim.paper_arm.name}, {METRIC_WORDS[claim.metric]}: "
               f"{_points(effect.estimate)} points, 95% CI [{_points(effect.low)}, {_points(effect.high)}], "
               f"n = {effect.n} seeds")
    return Outcome(claim, verdict, summary, effect, needed_seeds(effect, 0.0, claim.threshold),
                   per_seed, _ids(records))


def _evaluate_within(claim: Claim, records: dict[str, dict[int, dict]]) -> Outcome:
    paper, other = claim.paper_arm, claim.other_arm
    runs = next(iter(records.values()))  # both arms are the same runs, measured two ways
    per_seed = {arm.name: {seed: r["analysis"]["measures"][arm.measure] for seed, r in runs.items()}
                for arm in claim.arms}
    effect = stats.paired_difference(per_seed[other.name], per_seed[paper.name])
    verdict = decide(effect, 0.0, claim.threshold)
    summary = (f"{other.name} minus {paper.name}: {_points(effect.estimate)} points, "
               f"95% CI [{_points(effect.low)}, {_points(effect.high)}], n = {effect.n} seeds")
    return Outcome(claim, verdict, summary, effect, needed_seeds(effect, 0.0, claim.threshold), per_seed,
                   _ids(records))

def _evaluate_ratio(claim: Claim, records: dict[str, dict[int, dict]]) -> Outcome:
    target = claim.target_train_error
    crossings = {label: {seed: stats.iterations_to_target(r["iterations"], target) for seed, r in by_seed.items()}
                 for label, by_seed in records.items()}
    per_label = {label: {seed: float(c.iteration) for seed, c in by_seed.items()}
                 for label, by_seed in crossings.items()}
    chosen = best_lr_labels(claim, per_label)
    slow, fast = chosen[claim.other_arm.name], chosen[claim.paper_arm.name]
    ratio = stats.bootstrap_ratio(per_label[slow], per_label[fast])
    slow_censored = not all(c.reached for c in crossings[slow].values())
    fast_censored = not all(c.reached for c in crossings[fast].values())
    if fast_censored:
        verdict = "inconclusive"  # the denominator is only a lower bound: the ratio means nothing
    else:
        verdict = decide(ratio, 1.0, claim.threshold, lower_bound=slow_censored)
    summary = (f"iterations to {target:.0%} training error, {slow} / {fast}: "
               f"{'at least ' if slow_censored else ''}{ratio.estimate:.2f}x, "
               f"95% bootstrap CI [{ratio.low:.2f}, {ratio.high:.2f}], n = {ratio.n} seeds")
    if slow_censored or fast_censored:
        summary += (f"; {'some ' + slow if slow_censored else ''}{' and ' if slow_censored and fast_censored else ''}"
                    f"{'some ' + fast if fast_censored else ''} runs never reached the target "
                    "(their last iteration is counted: a lower bound)")
    summary += _sweep_note(claim, chosen, crossings)
    ratios = [per_label[slow][s] / per_label[fast][s] for s in stats.paired_seeds(per_label[slow], per_label[fast])]
    spread = stats.mean_interval(ratios)
    return Outcome(claim, verdict, summary, ratio, needed_seeds(spread, 1.0, claim.threshold), per_label,
                   _ids(records), censored=slow_censored or fast_censored, chosen=chosen)


def best_lr_labels(claim: Claim, per_label: dict[str, dict[int, float]]) -> dict[str, str]:
    """Arm name -> the label of its runs to judge: without a sweep its only runs; with one, the lr
    whose mean iterations to the target is lowest (the first of the grid on a tie)."""
    chosen = {}
    for arm in claim.arms:
        labels = [label for a, _, label in arm_variants(claim) if a == arm]
        chosen[arm.name] = min(labels, key=lambda label: mean_value(per_label[label].values()))
    return chosen


def mean_value(values, empty: float = math.inf) -> float:
    """The mean, or `empty` for no values (a label with no runs never wins a sweep)."""
    values = list(values)
    return sum(values) / len(values) if values else empty


def _sweep_note(claim: Claim, chosen: dict[str, str], crossings: dict[str, dict[int, stats.Crossing]]) -> str:
    if not claim.lr_sweep:
        return ""
    never = [f"{label} in {sum(not c.reached for c in by_seed.values())} of {len(by_seed)} seeds"
             for label, by_seed in crossings.items() if not all(c.reached for c in by_seed.values())]
    grid = ", ".join(f"{lr:g}" for lr in claim.lr_sweep)
    edges = {sweep_label(arm, lr) for arm in claim.arms for lr in (claim.lr_sweep[0], claim.lr_sweep[-1])}
    at_edge = [label for label in chosen.values() if label in edges]
    note = f"; each arm at its best lr of {grid}"
    if at_edge:
        note += (f" ({', '.join(at_edge)}: at the grid's edge, so a lr outside it might be faster still)")
    if never:
        note += f"; never reached the target (counted at their last iteration): {', '.join(never)}"
    return note


def _evaluate_model(claim: Claim, results_dir: str | Path) -> Outcome:
    summary = architecture.load(results_dir)
    if summary is None:
        return Outcome(claim, "not run", f"{architecture.FILE_NAME} is missing: run the architecture notebook")
    if summary.get("training_sha256") != results.training_digest():
        return Outcome(claim, "stale", "made by other model code than the current")
    if claim.check == "layer_shapes":
        checked = [row for row in summary["layers"] if row["matches"] is not None]
        wrong = [row["name"] for row in checked if not row["matches"]]
        verdict = "not reproduced" if wrong else "reproduced"
        text = (f"{len(checked) - len(wrong)} of {len(checked)} conv and FC layers have Figure 2's output "
                "shape and kernels" + (f"; differ: {', '.join(wrong)}" if wrong else ""))
        return Outcome(claim, verdict, text)
    params_ratio = summary["parameters"] / summary["paper_parameters"]
    neurons_ratio = summary["neurons"] / summary["paper_neurons"]
    close = all(abs(r - 1) <= claim.tolerance for r in (params_ratio, neurons_ratio))
    text = (f"{summary['parameters']:,} parameters ({params_ratio:.3f} x 60 million), "
            f"{summary['neurons']:,} neurons ({neurons_ratio:.3f} x 650,000)")
    return Outcome(claim, "consistent with the paper" if close else "not reproduced", text)


def _ids(records: dict[str, dict[int, dict]]) -> list[str]:
    return list(dict.fromkeys(r["run_id"] for by_seed in records.values() for r in by_seed.values()))


def _points(fraction: float) -> str:
    return "nan" if math.isnan(fraction) else f"{100 * fraction:+.2f}"


def lr_fairness(claim: Claim, preset: str) -> str:
    """Whether the arms' learning rates were tuned, for the book's flag on every trained claim."""
    if not claim.trains:
        return ""
    if claim.kind == "within":
        return "one set of runs measured two ways: no lr to tune"
    if claim.lr_sweep:
        return f"tuned: each arm at its best of lr {', '.join(f'{lr:g}' for lr in claim.lr_sweep)}"
    lr = params.resolve({}, preset=preset, network=claim.network)["lr"]
    return f"not tuned: both arms at lr {lr:g} (the paper tuned lr per net only for Figure 1)"


def claims_of(ablation: str, registry: dict[str, Claim] | None = None) -> list[Claim]:
    registry = registry or load_registry()
    return [c for c in registry.values() if c.ablation == ablation]


def ablations(registry: dict[str, Claim] | None = None) -> list[str]:
    """The ablation notebooks, in registry order."""
    registry = registry or load_registry()
    names = [c.ablation for c in registry.values() if c.ablation]
    return list(dict.fromkeys(names))


def rule_text(claim: Claim) -> str:
    """The claim's decision rule in words, from the same numbers `decide` uses."""
    if claim.kind == "untested":
        return f"not tested here: {claim.reason}"
    if claim.kind == "model":
        if claim.check == "layer_shapes":
            return ("reproduced if every conv and FC layer of the built two-tower net has Figure 2's output "
                    "shape and kernel shape; otherwise not reproduced")
        return (f"consistent with the paper if both counts are within {claim.tolerance:.0%} of its rounded "
                "numbers; otherwise not reproduced")
    if claim.kind == "ratio":
        effect, null, size = (f"the ratio of mean iterations to {claim.target_train_error:.0%} training error, "
                              f"{claim.other_arm.name} / {claim.paper_arm.name}"
                              + (" (each at its best lr of the sweep)" if claim.lr_sweep else "")), "1", \
            f"{claim.threshold:g}x"
    elif claim.kind == "within":
        effect = (f"the mean over seeds of ({MEASURE_WORDS[claim.other_arm.measure]} minus "
                  f"{MEASURE_WORDS[claim.paper_arm.measure]}, on the same runs)")
        null, size = "0", f"{100 * claim.threshold:g} points"
    else:
        effect = (f"the mean over seeds of ({METRIC_WORDS[claim.metric]}: {claim.other_arm.name} minus "
                  f"{claim.paper_arm.name})")
        null, size = "0", f"{100 * claim.threshold:g} points"
    return (f"with {effect}, reproduced if its 95% interval lies above {null} and the estimate is at least "
            f"{size}; consistent with the paper if the interval lies above {null} with a smaller estimate; "
            f"not reproduced if the interval lies below {size} (and not above {null}); otherwise inconclusive")
