"""The registered claims decided together: Holm's step-down correction over every registered claim's two
one-sided hypotheses, the levels and intervals the verdicts were decided at, whether a verdict holds on
another machine, each registered version of a rule judged the same way, and the verdicts as JSON
(`python -m reproduce claims --json`) and in one terminal line.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from reproduce.spec import plan, registration
from reproduce.spec.plan import Claim
from reproduce.verdicts import rule_versions, stats
from reproduce.verdicts.claims import ALPHA, VERDICTS, Outcome, evaluate
from reproduce.verdicts.wording import proxy_text


def evaluate_family(preset: str, seeds: int, results_dir: str | Path = "results",
                    overrides: dict[str, Any] | None = None, registry: dict[str, Claim] | None = None,
                    alpha: float = ALPHA) -> list[Outcome]:
    """Every claim of the registry at this preset, the registered ones decided together (apply_holm)."""
    outcomes = [evaluate(claim, preset, seeds, results_dir, overrides)
                for claim in (registry or plan.load_registry()).values()]
    apply_holm(outcomes, alpha)
    return outcomes


def apply_holm(outcomes: list[Outcome], alpha: float = ALPHA) -> None:
    """Decide the registered claims together: each has two one-sided hypotheses (its direction, its size),
    and the registration's correction across all of them keeps the chance of any false verdict at `alpha`,
    whatever the verdicts assert - "not reproduced" as much as "reproduced". A claim whose direction is shown
    is reproduced (at least its threshold) or consistent with the paper (less); one whose size is ruled out,
    and not its direction, is not reproduced; otherwise inconclusive. Claims whose comparisons are the same
    numbers (merge_identical) are one member of the family, and get one verdict."""
    family = [o for o in outcomes if o.claim.estimator and o.verdict in VERDICTS and o.interval is not None]
    members = {ids[0]: ids for ids, _ in merge_identical(family)}
    raw = {(o.claim.id, side): p for o in family if o.claim.id in members
           for side, p in (("direction", o.p_direction), ("size", o.p_size))}
    # A registered claim with no verdict yet (its runs missing or running) stays in the family at p = 1, as does
    # a hypothesis its data cannot test (stats.holm_adjusted): the family is always the registered one, so a
    # verdict given before the study is whole is never held to a laxer level than the registered family's.
    raw.update({(claim_id, side): 1.0 for claim_id in _undecided_members(outcomes, family)
                for side in ("direction", "size")})
    adjusted, levels = correction(raw, alpha)
    member_of = {claim_id: first for first, ids in members.items() for claim_id in ids}
    for outcome in family:
        key = member_of[outcome.claim.id]
        outcome.adjusted = (adjusted[(key, "direction")], adjusted[(key, "size")])
        outcome.levels = (levels[(key, "direction")], levels[(key, "size")])
        outcome.deciding = (stats.one_sided_bound(outcome.interval, outcome.levels[0], lower=True),
                            stats.one_sided_bound(outcome.interval, outcome.levels[1], lower=False))
        outcome.family = len(raw)
        outcome.verdict = holm_verdict(outcome, *outcome.adjusted, alpha)
        outcome.machine = machine_sensitivity(outcome, raw, adjusted, alpha, key)


def _undecided_members(outcomes: list[Outcome], family: list[Outcome]) -> list[str]:
    """The registered claims with no verdict yet, once each: one that takes its `same_as` claim's runs at
    this preset (C15b C15's, plan.shares_runs) will get the same numbers, so it is that claim's member."""
    decided = {o.claim.id for o in family}
    runs_of = {o.claim.id: set(o.run_ids) for o in outcomes}
    return [o.claim.id for o in outcomes
            if o.claim.estimator and o.claim.id not in decided
            and not (o.claim.same_as and o.run_ids and runs_of.get(o.claim.same_as) == set(o.run_ids))]


CORRECTIONS = {
    "holm": "Holm's step-down over every hypothesis",
    "constrained-holm": "Holm's step-down constrained by each claim's two nulls, which exclude each other (Shaffer)",
}


def correction(raw: dict[tuple[str, str], float], alpha: float) -> tuple[dict, dict]:
    """(adjusted p-values, deciding levels) by the registration's correction (CORRECTIONS; Holm's by default)."""
    if registration.load().get("correction_method", "holm") == "constrained-holm":
        return stats.constrained_holm_adjusted(raw), stats.constrained_holm_levels(raw, alpha)
    return stats.holm_adjusted(raw), stats.holm_levels(raw, alpha)


def holm_verdict(outcome: Outcome, direction: float, size: float, alpha: float = ALPHA) -> str:
    if direction <= alpha:  # NaN compares False: an untestable side never decides
        at_least = outcome.interval.estimate >= outcome.claim.threshold
        return "reproduced" if at_least else "consistent with the paper"
    return "not reproduced" if size <= alpha else "inconclusive"


def machine_sensitivity(outcome: Outcome, raw: dict, adjusted: dict, alpha: float, key: str | None = None) -> str:
    """Whether the verdict holds if every run had been trained on another machine: each per-seed error moves
    by the noise measured between two CPUs (MACHINE_NOISE_SD, registration), so the mean difference by about
    2 x sqrt(2) x that / sqrt(n) at the worst; the test statistics shift, Holm's multipliers stay."""
    noise = registration.load().get("machine_noise_sd")
    if noise is None or outcome.claim.kind == "ratio":
        return "not assessed (the noise measured between machines is in points of error)"
    interval = outcome.interval
    shift = 2 * math.sqrt(2) * noise / math.sqrt(interval.n)
    key = key or outcome.claim.id
    factor = {side: adjusted[(key, side)] / raw[(key, side)] if raw[(key, side)] > 0 else 1.0
              for side in ("direction", "size")}
    verdicts = set()
    for move in (-shift, shift):
        moved = stats.Interval(interval.estimate + move, interval.low + move, interval.high + move, interval.n,
                               interval.sd)
        shifted = Outcome(outcome.claim, outcome.verdict, interval=moved)
        verdicts.add(holm_verdict(shifted, min(1.0, factor["direction"] * stats.one_sided_p(moved, 0.0, True)),
                                  min(1.0, factor["size"] * stats.one_sided_p(moved, outcome.claim.threshold, False)),
                                  alpha))
    if verdicts == {outcome.verdict}:
        return f"holds if the mean moves by {100 * shift:.2f} points either way"
    return f"could change on another machine (a {100 * shift:.2f}-point move gives {', '.join(sorted(verdicts))})"


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered version of a claim's rule and the verdict it gives on the current records."""
    commit: str
    date: str
    verdict: str
    measured: str
    after_records: bool  # a change of an earlier rule, made when run records had already been committed


def registered_versions(claim: Claim, preset: str, seeds: int, results_dir: str | Path = "results",
                        registry: Path = plan.REGISTRY_PATH,
                        family: list[Outcome] | None = None) -> list[RegisteredVersion]:
    """Every version of the claim's rule (reproduce.verdicts.rule_versions), each judged on today's records as the
    headline is: with `family` (the preset's outcomes), a registered version is decided with the others by
    Holm's correction. Versions whose rules differ only in their number of seeds are one version: the seeds
    that exist decide how many are used, not what the rule is."""
    first_records = rule_versions.first_records_date(registry)
    found: list[RegisteredVersion] = []
    versions = _distinct_rules(rule_versions.versions(claim.id, registry))
    # Versions before the first that tests anything (kind "untested": a reason, no rule) are not rules.
    while len(versions) > 1 and versions[0].entry.get("kind") == "untested":
        versions = versions[1:]
    for index, version in enumerate(versions):
        entry, dropped = _readable_today(version.entry)
        try:
            outcome = evaluate(plan.parse_claim(claim.id, entry), preset, seeds, results_dir)
            if family is not None and outcome.claim.estimator:
                apply_holm([o for o in family if o.claim.id != claim.id] + [outcome])
            verdict = outcome.verdict
            measured = outcome.short if outcome.interval is not None else textwrap.shorten(outcome.summary, 160)
            if dropped:
                measured += f" (left out: {', '.join(dropped)}, a field that decides nothing and that today's code lacks)"
        except plan.RegistryError as exc:
            verdict, measured = "not evaluable", f"today's code cannot read this version ({exc})"
        after = index > 0 and bool(first_records) and (not version.date or version.date > first_records)
        found.append(RegisteredVersion(version.commit, version.date, verdict, measured, after))
    if family is not None:
        apply_holm(family)  # the family's own outcomes as they were
    return found


def _distinct_rules(versions: list[rule_versions.Version]) -> list[rule_versions.Version]:
    """Consecutive versions that differ only in `seeds` merged into the later one."""
    merged: list[rule_versions.Version] = []
    for version in versions:
        if merged and _without_seeds(merged[-1].entry) == _without_seeds(version.entry):
            merged[-1] = version
        else:
            merged.append(version)
    return merged


def _without_seeds(entry: dict[str, Any]) -> dict[str, Any]:
    rule = rule_versions.rule_of(entry)
    rule.pop("seeds", None)
    return rule


def _readable_today(entry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An old registry entry without the fields today's schema dropped, when none of them is part of
    the rule (a note that moved elsewhere, say); those are named. A dropped rule field is kept, so that
    the version is refused rather than judged by another rule."""
    known = {f.name for f in dataclass_fields(Claim)} | set(plan.NOTE_KEYS) | {"metric", "paper_arm", "other_arm"}
    dropped = [key for key in entry if key not in known and key not in rule_versions.RULE_KEYS]
    return {k: v for k, v in entry.items() if k not in dropped}, dropped


def as_json(outcome: Outcome, preset: str, versions: list[RegisteredVersion]) -> dict[str, Any]:
    """The machine-readable verdict of `python -m reproduce claims --json` (the book's numbers, the same
    computation)."""
    claim, interval = outcome.claim, outcome.interval

    def number(value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else value

    unit = {"ratio": "ratio", "difference": "difference", "within": "difference"}.get(claim.kind)
    current = versions[-1] if versions else None
    design = registration.load()
    return {
        "title": claim.title, "verdict": outcome.verdict, "preliminary": outcome.preliminary,
        "summary": outcome.summary, "unit": unit,
        "estimate": number(interval.estimate if interval else None), "low": number(interval.low if interval else None),
        "high": number(interval.high if interval else None), "n": interval.n if interval else 0,
        "registered": None if not claim.estimator else {
            "version": len(versions), "commit": current.commit if current else None,
            "date": current.date if current else None, "seeds": claim.seeds,
            "seed_numbers": plan.claim_seeds(claim, preset, claim.seeds or 0), "threshold": claim.threshold,
            "estimator": claim.estimator, "estimator_words": plan.ESTIMATORS[claim.estimator],
            "crossing": claim.crossing, "detectable_effect": (design.get("detectable") or {}).get(claim.id),
            "pilot_seeds": design.get("pilot_seeds"), "correction": design.get("correction")},
        "bound": outcome.bound, "censored": outcome.censored, "ended_at_chance": outcome.dead,
        "without_ended_at_chance": None if outcome.without_dead is None else {
            "estimate": outcome.without_dead.estimate, "low": number(outcome.without_dead.low),
            "high": number(outcome.without_dead.high), "n": outcome.without_dead.n},
        "per_seed": outcome.per_seed, "run_ids": outcome.run_ids,
        "p_direction": number(outcome.p_direction), "p_size": number(outcome.p_size),
        "holm_adjusted": None if outcome.adjusted is None else {
            "direction": number(outcome.adjusted[0]), "size": number(outcome.adjusted[1]), "family": outcome.family},
        "deciding_interval": None if outcome.deciding is None else {
            "low": number(outcome.deciding[0]), "high": number(outcome.deciding[1]),
            "direction_level": outcome.levels[0], "size_level": outcome.levels[1]},
        "machine_noise": outcome.machine or None, "proxy": proxy_text(claim, preset),
        "versions": [{"commit": v.commit, "date": v.date, "verdict": v.verdict, "after_records": v.after_records}
                     for v in versions],
    }


def one_line(outcome: Outcome) -> str:
    """The outcome for a terminal line: the estimate, or how many of its runs are in which state."""
    if outcome.states:
        total = sum(outcome.states.values())
        counts = ", ".join(f"{n} {state}" for state, n in sorted(outcome.states.items(), key=lambda item: -item[1]))
        return f"{counts} of its {total} runs" + (f" ({outcome.problems[0]}, ...)" if outcome.problems else "")
    return outcome.short


def merge_identical(outcomes: Any) -> list[tuple[list[str], Outcome]]:
    """Claims whose comparisons are the same numbers (C15 and C15b with one tower and zero biases: the
    same function from the same weights) are shown once, with both ids."""
    merged: list[tuple[list[str], Outcome]] = []
    for outcome in outcomes:
        same = next((ids for ids, seen in merged if seen.interval is not None and outcome.interval is not None
                     and seen.claim.kind == outcome.claim.kind and seen.interval == outcome.interval
                     and _values(seen) == _values(outcome)), None)
        if same is None:
            merged.append(([outcome.claim.id], outcome))
        else:
            same.append(outcome.claim.id)
    return merged


def _values(outcome: Outcome) -> list[list[float]]:
    return [sorted(by_seed.items()) for by_seed in outcome.per_seed.values()]
