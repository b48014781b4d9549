"""Statistics for a handful of seeds: paired differences, ratios on the log scale, one-sided tests,
power and detectable effects, Holm.

Every comparison pairs runs by seed: two arms with the same seed start from the same random
state and see the same data order, so their difference removes most seed-to-seed noise.

Intervals are 95% Student t intervals, which keep their coverage at n = 3 when the per-seed
values are roughly normal (tests/test_stats.py checks it by simulation):
- a difference claim: the mean of the per-seed differences;
- a ratio claim: the mean of the per-seed log ratios, exponentiated, so the estimate is the
  geometric mean of the per-seed ratios and the interval is asymmetric, as ratios are.
No bootstrap: with 3 seeds a percentile bootstrap has 10 distinct resamples, and its "interval"
is the smallest and largest per-seed value, which covers far less than 95%.
Distributions are scipy.stats'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as distributions

CONFIDENCE = 0.95
POWER = 0.80
MOST_SEEDS = 1000


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval over n seeds (low/high are NaN when n is too small).
    `sd` is the spread of the per-seed values on the scale the interval was made on (log for ratios)."""
    estimate: float
    low: float
    high: float
    n: int
    sd: float = math.nan
    log_scale: bool = False


def t_quantile(df: int, probability: float = 0.5 + CONFIDENCE / 2) -> float:
    """Student t's quantile (two-sided 95% by default)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return float(distributions.t.ppf(probability, df))


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean with a 95% t interval; with one value the interval is undefined (NaN)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, math.nan, math.nan, 1)
    sd = float(data.std(ddof=1))
    half = t_quantile(data.size - 1) * sd / math.sqrt(data.size)
    return Interval(mean, mean - half, mean + half, int(data.size), sd)


def paired_seeds(a: Mapping[int, float], b: Mapping[int, float]) -> list[int]:
    """The seeds both arms have, in order: only those can be paired."""
    return sorted(set(a) & set(b))


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> Interval:
    """Mean of a[seed] - b[seed] over the seeds both have, with its 95% t interval."""
    seeds = paired_seeds(a, b)
    if not seeds:
        raise ValueError("the two arms have no seed in common")
    return mean_interval([a[s] - b[s] for s in seeds])


def log_ratio(numerator: Mapping[int, float], denominator: Mapping[int, float]) -> Interval:
    """Geometric mean of numerator[seed] / denominator[seed] over paired seeds, with the 95% t
    interval of the mean log ratio, exponentiated."""
    seeds = paired_seeds(numerator, denominator)
    if not seeds:
        raise ValueError("the two arms have no seed in common")
    logs = mean_interval([math.log(numerator[s] / denominator[s]) for s in seeds])
    return Interval(math.exp(logs.estimate), math.exp(logs.low), math.exp(logs.high), logs.n, logs.sd,
                    log_scale=True)


def to_test_scale(interval: Interval, value: float) -> float:
    """`value` (a null or a threshold) on the scale the interval's t statistic lives on."""
    return math.log(value) if interval.log_scale else value


def one_sided_p(interval: Interval, value: float, above: bool) -> float:
    """p of the one-sided t test whose null is "the effect is at most `value`" (above=True: a small p
    says the effect is above it) or "at least `value`" (above=False). NaN below 2 seeds."""
    if interval.n < 2 or not math.isfinite(interval.sd):
        return math.nan
    centre = math.log(interval.estimate) if interval.log_scale else interval.estimate
    gap = centre - to_test_scale(interval, value)
    if interval.sd == 0:
        return 0.0 if (gap > 0) == above and gap != 0 else 1.0
    t = gap / (interval.sd / math.sqrt(interval.n))
    return float(distributions.t.sf(t, interval.n - 1) if above else distributions.t.cdf(t, interval.n - 1))


def power_of(n: int, effect: float, sd: float, level: float) -> float:
    """Power of the one-sided t test at `level` with n seeds, when the true effect is `effect` away from
    its null and the per-seed values are normal with this sd: from the noncentral t."""
    if n < 2:
        return 0.0
    return float(distributions.nct.sf(distributions.t.ppf(1 - level, n - 1), n - 1, effect * math.sqrt(n) / sd))


def seeds_needed(effect: float, sd: float, level: float, power: float = POWER, most: int = MOST_SEEDS) -> int | None:
    """Fewest seeds whose one-sided t test at `level` has `power` against an effect this far from its
    null; None beyond `most`."""
    if effect <= 0 or not math.isfinite(sd):
        return None
    return next((n for n in range(2, most + 1) if power_of(n, effect, sd, level) >= power), None)


def detectable_effect(n: int, sd: float, level: float, power: float = POWER) -> float:
    """The smallest effect n seeds detect with `power` (one-sided t test at `level`): the distance from a
    null at which the test's power reaches it."""
    low, high = 0.0, 100 * sd
    for _ in range(80):  # bisection: power grows with the effect
        middle = (low + high) / 2
        low, high = (middle, high) if power_of(n, middle, sd, level) < power else (low, middle)
    return high


def sd_upper_bound(sd: float, df: int, confidence: float = CONFIDENCE) -> float:
    """A one-sided upper confidence bound of a normal sd estimated with df degrees of freedom: what the
    spread could be, pessimistically."""
    return sd * math.sqrt(df / distributions.chi2.ppf(1 - confidence, df))


def holm_adjusted(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's adjusted p-values: a hypothesis is rejected with family-wise error alpha when its adjusted p
    is at most alpha. Every hypothesis counts in the family; one that cannot be tested counts at p = 1."""
    tested = sorted((1.0 if math.isnan(p) else p, name) for name, p in p_values.items())
    adjusted, running = {}, 0.0
    for rank, (p, name) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[name] = running
    return adjusted


def holm_levels(p_values: Mapping[str, float], alpha: float = 1 - CONFIDENCE) -> dict[str, float]:
    """The level each hypothesis was decided at in Holm's step-down: the k-th smallest p (from 0) is tested at
    alpha / (m - k) while every smaller one was rejected; where the procedure stops, that hypothesis and all
    after it are decided at the level it stopped at. An interval at a hypothesis's level therefore clears its
    null exactly when Holm rejects it. An untestable hypothesis counts at p = 1."""
    tested = sorted((1.0 if math.isnan(p) else p, name) for name, p in p_values.items())
    levels, stopped = {}, None
    for rank, (p, name) in enumerate(tested):
        level = alpha / (len(tested) - rank)
        if stopped is None and p > level:
            stopped = level
        levels[name] = stopped if stopped is not None else level
    return levels


def constrained_holm_adjusted(p_values: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """Adjusted p-values of constrained_holm_levels' procedure: the k-th smallest p times the number of claims
    still open when every smaller one is rejected, made monotone; a hypothesis is rejected at family-wise
    alpha exactly when its adjusted p is at most alpha. Keys are (claim, hypothesis); NaN counts as 1."""
    tested = sorted((1.0 if math.isnan(p) else p, key) for key, p in p_values.items())
    open_claims: dict[str, int] = {}
    for _, (claim, _) in tested:
        open_claims[claim] = open_claims.get(claim, 0) + 1
    adjusted, running = {}, 0.0
    for p, key in tested:
        running = max(running, min(1.0, len(open_claims) * p))
        adjusted[key] = running
        open_claims[key[0]] -= 1
        if not open_claims[key[0]]:
            del open_claims[key[0]]
    return adjusted


def constrained_holm_levels(p_values: Mapping[tuple[str, str], float],
                            alpha: float = 1 - CONFIDENCE) -> dict[tuple[str, str], float]:
    """Holm's step-down where the hypotheses of one claim cannot be true together (Shaffer 1986, method 2):
    a claim's "no effect in the paper's direction" and "an effect at least the threshold" exclude each
    other, so at most one hypothesis per claim is true. The k-th smallest p is tested at alpha / t, t the
    number of claims that still have a hypothesis not rejected (each can hold at most one true null),
    instead of alpha / (m - k); t is never more than Holm's m - k, and with two per claim the first step is at
    alpha / claims, not alpha / (2 claims). Keys are (claim, hypothesis); an untestable one counts at p = 1.
    Levels are reported as holm_levels does: where it stops, the rest are decided at that level."""
    tested = sorted((1.0 if math.isnan(p) else p, key) for key, p in p_values.items())
    open_claims = {}
    for _, (claim, _) in tested:
        open_claims[claim] = open_claims.get(claim, 0) + 1
    levels, stopped = {}, None
    for p, key in tested:
        level = alpha / len(open_claims)
        if stopped is None and p > level:
            stopped = level
        levels[key] = stopped if stopped is not None else level
        if stopped is None:
            open_claims[key[0]] -= 1
            if not open_claims[key[0]]:
                del open_claims[key[0]]
    return levels


def one_sided_bound(interval: Interval, level: float, lower: bool) -> float:
    """The one-sided (1 - level) confidence bound of the interval's mean (on the ratio scale for a ratio):
    the lower one clears a null exactly when the one-sided test of "at most the null" rejects at `level`."""
    if interval.n < 2 or not math.isfinite(interval.sd):
        return math.nan
    centre = math.log(interval.estimate) if interval.log_scale else interval.estimate
    half = t_quantile(interval.n - 1, 1 - level) * interval.sd / math.sqrt(interval.n)
    bound = centre - half if lower else centre + half
    return math.exp(bound) if interval.log_scale else bound


CHANCE_MARGIN = 0.05  # within this of chance error at its end, a run has not learned


def ended_at_chance(iterations: Sequence[Mapping[str, float]], classes: int, margin: float = CHANCE_MARGIN) -> bool:
    """Whether a run's training error, averaged over the last tenth of its log points, is within `margin` of
    chance (1 - 1/classes): a run that did not learn, whose "iterations to the target" say nothing of its arm's
    speed. Not part of any registered rule: the estimate without such runs is shown beside the registered one."""
    if not iterations:
        return False
    tail = iterations[-max(1, len(iterations) // 10):]
    return sum(point["train_error"] for point in tail) / len(tail) >= 1 - 1 / classes - margin


@dataclass(frozen=True)
class Crossing:
    """When a run's training error first reached a target: the iteration, or the last one seen."""
    iteration: float
    reached: bool


def smoothed_crossing(iterations: Iterable[Mapping[str, float]], target: float, window: int = 3) -> Crossing:
    """When the training error, averaged over `window` consecutive log points, first reaches the target,
    interpolated linearly between the two log points around it: a count that moves smoothly with the
    curve, so that no tie at one log point decides a comparison. Never reached: the last iteration, a
    lower bound (reached=False)."""
    points = [(float(p["iteration"]), float(p["train_error"])) for p in iterations]
    smooth = [(points[i][0], sum(e for _, e in points[i - window + 1:i + 1]) / window)
              for i in range(window - 1, len(points))]
    for (x0, y0), (x1, y1) in zip(smooth, smooth[1:]):
        if y1 <= target:
            share = 0.0 if y0 <= target or y0 == y1 else (y0 - target) / (y0 - y1)
            return Crossing(x0 + share * (x1 - x0), True)
    if smooth and smooth[0][1] <= target:
        return Crossing(smooth[0][0], True)
    return Crossing(points[-1][0] if points else 0.0, False)


def iterations_to_target(iterations: Iterable[Mapping[str, float]], target: float) -> Crossing:
    """First logged iteration whose training error (the mean over its log window) is <= target.

    A run that never gets there is censored: it returns its last iteration with reached=False,
    a lower bound on the true count."""
    last = 0
    for point in iterations:
        last = int(point["iteration"])
        if point["train_error"] <= target:
            return Crossing(last, True)
    return Crossing(last, False)
