"""Each claim's verdict, from the run records of the runs reproduce.spec.plan says it needs.

A verdict is decided by the claim's rule in the registry, from the run records alone. When the
runs are missing, unfinished, failed or made by other training code, the claim says so instead
of a verdict: a number is never shown without the runs that back it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reproduce.records import provenance, results
from reproduce.runs import analysis, architecture
from reproduce.spec import metrics, params, plan, run_ids
from reproduce.spec.plan import Claim, arm_variants, planned_runs, sweep_label, untestable_reason, varied_names
from reproduce.verdicts import stats
from reproduce.verdicts.wording import percent

ALPHA = 1 - stats.CONFIDENCE  # the family-wise error rate of the registered verdicts
VERDICTS = ("reproduced", "consistent with the paper", "not reproduced", "inconclusive", "not tested here")
# What a claim shows instead of a verdict when its runs are not all there: the state of its runs
# (results.RUN_STATES), the one that most needs a person's attention first.
NO_VERDICT = ("failed", "stale", "running", "unmeasured", "missing")


# ----------------------------------------------------------------------------- metrics of a record

def final_test_error(record: dict[str, Any]) -> float:
    return metrics.METRICS["final_test_top1_error"].of(record)


def final_fit_gap(record: dict[str, Any]) -> float:
    return metrics.METRICS["final_fit_gap"].of(record)


# ----------------------------------------------------------------------------- verdicts

@dataclass
class Outcome:
    """A claim's verdict (or why there is none) and the numbers behind it."""
    claim: Claim
    verdict: str
    summary: str = ""
    interval: stats.Interval | None = None
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)  # how many of its planned runs are in each state
    censored: bool = False
    # A ratio whose runs of one arm never reached the target (their last iteration counted): "lower" when the
    # slow arm's did (the true ratio is larger), "upper" when the fast arm's did (smaller), None otherwise.
    bound: str | None = None
    dead: list[str] = field(default_factory=list)  # runs that ended at chance (stats.ended_at_chance)
    without_dead: stats.Interval | None = None  # the estimate on the seeds with no such run
    chosen: dict[str, str] = field(default_factory=dict)  # lr sweeps: arm name -> label of its best lr
    # The two one-sided t tests a verdict can rest on: "the effect is at most no effect" (a small p: the
    # paper's direction) and "the effect is at least the threshold" (a small p: the claimed size ruled out).
    p_direction: float = math.nan
    p_size: float = math.nan
    adjusted: tuple[float, float] | None = None  # the same after Holm's correction across the family
    levels: tuple[float, float] | None = None  # the one-sided levels Holm decided the two at (stats.holm_levels)
    deciding: tuple[float, float] | None = None  # the bounds at those levels: the interval the verdict rests on
    family: int = 0  # hypotheses in that family
    machine: str = ""  # whether the verdict holds within the noise of training on another machine

    @property
    def short(self) -> str:
        """The estimate, its 95% interval and n, for a table at a glance."""
        i = self.interval
        if i is None:
            return self.summary  # why there is no number: missing runs, or why it is not tested here
        if self.claim.kind == "ratio":
            bound = {"lower": ">= ", "upper": "<= "}.get(self.bound or "", "")
            return f"{bound}{i.estimate:.2f}x [{i.low:.2f}, {i.high:.2f}], n={i.n}"
        return f"{_points(i.estimate)} pts [{_points(i.low)}, {_points(i.high)}], n={i.n}"

    @property
    def preliminary(self) -> bool:
        """Fewer seeds than registered: a look at the data, not the registered test."""
        return bool(self.claim.seeds and self.interval is not None and self.interval.n < self.claim.seeds)


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


DECIDED = ("reproduced", "consistent with the paper", "not reproduced")


def evaluate(claim: Claim, preset: str, seeds: int, results_dir: str | Path = "results",
             overrides: dict[str, Any] | None = None) -> Outcome:
    if claim.kind == "untested":
        return Outcome(claim, "not tested here", claim.reason or "")
    if claim.kind == "model":
        return _evaluate_model(claim, results_dir)
    reason = untestable_reason(claim, preset, overrides)
    if reason:
        return Outcome(claim, "not tested here", reason)
    same = plan.shares_runs(claim, preset, overrides)
    if same:
        shared = evaluate(plan.load_registry()[same], preset, seeds, results_dir, overrides)
        return replace(shared, claim=claim, summary=f"the same runs and numbers as {same} here ({_settings(claim)}: "
                       f"the same function from the same weights): {shared.summary}")
    records, outcome = _gather(claim, preset, seeds, results_dir, overrides)
    if outcome is not None:
        return outcome
    if claim.kind == "ratio":
        return _evaluate_ratio(claim, records)
    if claim.kind == "within":
        return _evaluate_within(claim, records)
    return _evaluate_difference(claim, records)


def _settings(claim: Claim) -> str:
    return ", ".join(f"{name} {params.show_value(value)}" for name, value in claim.same_when.items())


def _gather(claim: Claim, preset: str, seeds: int, results_dir: str | Path,
            overrides: dict[str, Any] | None) -> tuple[dict[str, dict[int, dict]], Outcome | None]:
    """The complete, current records of every planned run (with their analysis, for a claim that
    measures final weights), or an Outcome saying what is wrong."""
    records: dict[str, dict[int, dict]] = {}
    problems, ids, states = [], [], Counter()
    fixed = varied_names(claim) | {"seed"} | set(params.get_preset(preset).networks[claim.network]) | set(
        overrides or {})
    existing = results.readable_records(results_dir)
    for label, by_seed in planned_runs(claim, preset, seeds, overrides).items():
        records[label] = {}
        for seed, config in by_seed.items():
            ids.append(run_ids.run_id(config))
            state, record = _run_state(results_dir, config)
            if state == "missing":
                state, record = _earlier_version(config, fixed, existing)
            if state == "complete" and claim.kind == "within":
                state, record = _with_analysis(results_dir, record)
            states[state] += 1
            if state == "complete":
                records[label][seed] = record
            else:
                problems.append(f"{label}, seed {seed}: {state}" + (f" ({record['error']})"
                                                                     if record and record.get("error") else ""))
    if problems:
        return records, Outcome(claim, _missing_verdict(set(states)), "; ".join(problems),
                                run_ids=list(dict.fromkeys(ids)), problems=problems, states=dict(states))
    return records, None


def _with_analysis(results_dir: str | Path, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    found = analysis.load(results_dir, record)
    if found is None:
        return "unmeasured", {"error": f"no current analysis of {record['run_id']}: run the "
                                         "features notebook (or python -m reproduce ablation features)"}
    return "complete", {**record, "analysis": found}


def _missing_verdict(states: set[str]) -> str:
    if "diverged" in states and states <= {"complete", "diverged"}:
        return "inconclusive"  # every run finished, but a diverged one leaves a pair without a value
    return next(state for state in NO_VERDICT if state in states)


def _run_state(results_dir: str | Path, config: dict[str, Any]) -> tuple[str, dict | None]:
    found = results.run_state(results_dir, config)
    if found.state == "complete":
        return "complete", found.record
    return found.state, ({"error": found.reason} if found.reason else None)


def _earlier_version(config: dict[str, Any], fixed: set[str],
                     existing: list[dict[str, Any]]) -> tuple[str, dict | None]:
    """"stale" when a record of this run exists under other defaults: the same arm, conditions,
    preset settings and seed, other values elsewhere (a default that changed since); else "missing"."""
    wanted = params.result_config(config)
    for record in existing:
        theirs = record.get("config") or {}
        if any(theirs.get(name) != wanted[name] for name in fixed if name in wanted):
            continue
        changed = [name for name in wanted if theirs.get(name) != wanted[name]]
        if changed and not set(changed) <= plan.compared_anywhere():  # else: another claim's arm, not a changed default
            shown = ", ".join(f"{name} {params.show_value(theirs.get(name))} (now {params.show_value(wanted[name])})"
                              for name in changed)
            return "stale", {"error": f"{record.get('run_id')} was made with other parameters: {shown}"}
    return "missing", None


def _evaluate_difference(claim: Claim, records: dict[str, dict[int, dict]]) -> Outcome:
    metric = metrics.METRICS[claim.metric].of
    per_seed = {arm: {seed: metric(r) for seed, r in by_seed.items()} for arm, by_seed in records.items()}
    outcome = _paired_outcome(claim, per_seed, records)
    outcome.summary = (f"{claim.other_arm.name} minus {claim.paper_arm.name}, {metrics.METRICS[claim.metric].words}: "
                       + outcome.summary)
    return outcome


def _evaluate_within(claim: Claim, records: dict[str, dict[int, dict]]) -> Outcome:
    runs = next(iter(records.values()))  # both arms are the same runs, measured two ways
    per_seed = {arm.name: {seed: r["analysis"]["measures"][arm.measure] for seed, r in runs.items()}
                for arm in claim.arms}
    outcome = _paired_outcome(claim, per_seed, records)
    outcome.summary = f"{claim.other_arm.name} minus {claim.paper_arm.name}: " + outcome.summary
    return outcome


def _paired_outcome(claim: Claim, per_seed: dict[str, dict[int, float]],
                    records: dict[str, dict[int, dict]]) -> Outcome:
    """A difference of the other arm minus the paper's, paired by seed, and its verdict on its own."""
    effect = stats.paired_difference(per_seed[claim.other_arm.name], per_seed[claim.paper_arm.name])
    summary = (f"{_points(effect.estimate)} points, 95% t interval [{_points(effect.low)}, {_points(effect.high)}], "
               f"n = {effect.n} seeds")
    return Outcome(claim, decide(effect, 0.0, claim.threshold), summary, effect, per_seed, _ids(records),
                   p_direction=stats.one_sided_p(effect, 0.0, above=True),
                   p_size=stats.one_sided_p(effect, claim.threshold, above=False))


def _evaluate_ratio(claim: Claim, records: dict[str, dict[int, dict]]) -> Outcome:
    target = claim.target_train_error
    crossing = CROSSING_RULES[claim.crossing or "first-log-point/1"]
    crossings = {label: {seed: crossing(r["iterations"], target) for seed, r in by_seed.items()}
                 for label, by_seed in records.items()}
    per_label = {label: {seed: float(c.iteration) for seed, c in by_seed.items()}
                 for label, by_seed in crossings.items()}
    chosen = best_lr_labels(claim, per_label)
    slow, fast = chosen[claim.other_arm.name], chosen[claim.paper_arm.name]
    seeds = stats.paired_seeds(per_label[slow], per_label[fast])
    # The registered chance rule (plan.CHANCE_RULES) leaves out a seed where either arm never learned.
    unlearned = [] if claim.chance is None else [
        (label, seed) for seed in seeds for label in (slow, fast)
        if not stats.smoothed_crossing(records[label][seed]["iterations"], plan.CHANCE_LEVELS[claim.chance]).reached]
    seeds = [seed for seed in seeds if all(seed != s for _, s in unlearned)]
    ratio = stats.log_ratio({s: per_label[slow][s] for s in seeds}, {s: per_label[fast][s] for s in seeds})
    slow_censored = not all(crossings[slow][s].reached for s in seeds)
    fast_censored = not all(crossings[fast][s].reached for s in seeds)
    # A run that never reached the target counts its last iteration, a lower bound of its own count. In the slow
    # arm that makes the ratio smaller than it is (a lower bound: it can still show the direction, never rule the
    # size out); in the fast arm larger (an upper bound: it can still rule the size out, never show the direction).
    p_direction = math.nan if fast_censored else stats.one_sided_p(ratio, 1.0, above=True)
    p_size = math.nan if slow_censored else stats.one_sided_p(ratio, claim.threshold, above=False)
    verdict = "inconclusive" if fast_censored else decide(ratio, 1.0, claim.threshold, lower_bound=slow_censored)
    bound = None if slow_censored == fast_censored else "lower" if slow_censored else "upper"
    dead = {(label, seed) for label in (slow, fast) for seed in seeds if stats.ended_at_chance(
        records[label][seed]["iterations"], params.DATASET_CLASSES[records[label][seed]["config"]["dataset"]])}
    alive = [s for s in seeds if (slow, s) not in dead and (fast, s) not in dead]
    without = (stats.log_ratio({s: per_label[slow][s] for s in alive}, {s: per_label[fast][s] for s in alive})
               if dead and len(alive) >= 2 else None)
    summary = (f"iterations to {percent(target)} training error, {slow} / {fast}: "
               f"{_bound_words(bound)}{ratio.estimate:.2f}x (geometric mean of the per-seed ratios), "
               f"95% t interval on their logs [{ratio.low:.2f}, {ratio.high:.2f}], n = {ratio.n} seeds")
    if slow_censored or fast_censored:
        never = [f"{label} seed {seed}" for label in (slow, fast) for seed in seeds if not crossings[label][seed].reached]
        summary += f"; never reached the target (their last iteration is counted): {', '.join(never)}"
    if dead:
        summary += (f"; ended at chance: {', '.join(f'{label} seed {seed}' for label, seed in sorted(dead))}"
                    + (f" - without them {without.estimate:.2f}x [{without.low:.2f}, {without.high:.2f}], n = "
                       f"{without.n} (not the registered estimate)" if without else ""))
    if unlearned:
        summary += (f"; never left chance, so their seeds are left out (the registered rule): "
                    f"{', '.join(f'{label} seed {seed}' for label, seed in unlearned)}")
    summary += _sweep_note(claim, chosen, crossings)
    return Outcome(claim, verdict, summary, ratio, per_label, _ids(records), censored=slow_censored or fast_censored,
                   bound=bound, dead=[f"{label} seed {seed}" for label, seed in sorted(dead)], without_dead=without,
                   chosen=chosen, p_direction=p_direction, p_size=p_size)


def _bound_words(bound: str | None) -> str:
    return {"lower": "at least ", "upper": "at most "}.get(bound or "", "")


CROSSING_RULES = {"first-log-point/1": stats.iterations_to_target, "smoothed-3/1": stats.smoothed_crossing}


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
        return Outcome(claim, "missing", f"{architecture.FILE_NAME} is missing: run the architecture notebook")
    if not provenance.is_current_code(summary.get("training_sha256")):
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


