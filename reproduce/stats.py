"""Statistics for a handful of seeds: paired differences, bootstrap ratios, iterations to a target.

Every comparison pairs runs by seed: two arms with the same seed start from the same random
state and see the same data order, so their difference removes most seed-to-seed noise.
Intervals are 95%: Student t for means of paired differences (few seeds, unknown spread),
a percentile bootstrap over seeds for ratios. With 3 seeds a bootstrap has only 10 distinct
resamples; the report says n beside every interval so that a reader can weigh it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

# Two-sided 95% quantiles of Student's t, t(0.975, df), for df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval over n seeds (low/high are NaN when n is too small)."""
    estimate: float
    low: float
    high: float
    n: int
    sd: float = math.nan

    def excludes(self, value: float) -> bool:
        return self.low > value or self.high < value


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the table up to 30, then the Cornish-Fisher expansion (error < 1e-3)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean with a 95% t interval; with one value the interval is undefined (NaN)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, math.nan, math.nan, 1)
    sd = float(data.std(ddof=1))
    half = t_quantile_975(data.size - 1) * sd / math.sqrt(data.size)
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


def bootstrap_ratio(numerator: Mapping[int, float], denominator: Mapping[int, float],
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Interval:
    """mean(numerator) / mean(denominator) over paired seeds, with a percentile bootstrap interval
    that resamples seeds (each resample keeps pairs together). The generator is seeded: the same
    inputs always give the same interval."""
    seeds = paired_seeds(numerator, denominator)
    if not seeds:
        raise ValueError("the two arms have no seed in common")
    num = np.array([numerator[s] for s in seeds], dtype=float)
    den = np.array([denominator[s] for s in seeds], dtype=float)
    estimate = float(num.mean() / den.mean())
    if len(seeds) == 1:
        return Interval(estimate, math.nan, math.nan, 1)
    picks = np.random.default_rng(seed).integers(0, len(seeds), size=(resamples, len(seeds)))
    ratios = num[picks].mean(axis=1) / den[picks].mean(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Interval(estimate, float(low), float(high), len(seeds), float(np.std(ratios, ddof=1)))


def seeds_needed(mean: float, sd: float, margin: float, most: int = 1000) -> int | None:
    """Smallest number of seeds whose 95% t interval, at this spread, is narrower than `margin` on
    each side; None when even `most` seeds would not do (or the margin is not positive)."""
    if margin <= 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return 2
    for n in range(2, most + 1):
        if t_quantile_975(n - 1) * sd / math.sqrt(n) < margin:
            return n
    return None


@dataclass(frozen=True)
class Crossing:
    """When a run's training error first reached a target: the iteration, or the last one seen."""
    iteration: int
    reached: bool


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
