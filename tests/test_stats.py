"""The statistics on inputs whose answers are known by hand."""

import math

import numpy as np
import pytest

from reproduce.verdicts import stats


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (10, 2.228), (30, 2.042),
                                          (40, 2.021), (60, 2.000), (120, 1.980), (10_000, 1.960)])
def test_t_quantiles_match_the_tables(df, expected):
    assert stats.t_quantile(df) == pytest.approx(expected, abs=1.5e-3)


def test_mean_interval_of_one_two_three():
    # mean 2, sd 1, half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.484
    interval = stats.mean_interval([1.0, 2.0, 3.0])
    assert interval.estimate == pytest.approx(2.0)
    assert interval.sd == pytest.approx(1.0)
    assert interval.low == pytest.approx(2.0 - 2.4843, abs=1e-3)
    assert interval.high == pytest.approx(2.0 + 2.4843, abs=1e-3)
    assert interval.n == 3


def test_one_value_has_no_interval():
    interval = stats.mean_interval([0.5])
    assert interval.estimate == 0.5 and math.isnan(interval.low) and math.isnan(interval.high)


def test_paired_difference_uses_only_seeds_both_arms_have():
    a = {0: 0.30, 1: 0.32, 2: 0.31, 7: 0.99}
    b = {0: 0.20, 1: 0.22, 2: 0.21}
    interval = stats.paired_difference(a, b)
    assert interval.n == 3
    assert interval.estimate == pytest.approx(0.10)
    assert interval.low == pytest.approx(0.10) and interval.high == pytest.approx(0.10)  # no spread


def test_pairing_removes_a_shared_seed_effect():
    # Seeds differ a lot, the arms differ by exactly 0.01 within each seed.
    a = {0: 0.11, 1: 0.31, 2: 0.51}
    b = {0: 0.10, 1: 0.30, 2: 0.50}
    assert stats.paired_difference(a, b).low == pytest.approx(0.01)


def test_no_common_seed_is_an_error():
    with pytest.raises(ValueError, match="no seed in common"):
        stats.paired_difference({0: 1.0}, {1: 1.0})


def test_a_ratio_is_the_geometric_mean_with_a_t_interval_on_the_logs():
    # per-seed ratios 2, 4, 8: logs ln2 * (1, 2, 3), mean 2 ln2 (ratio 4), sd ln2
    interval = stats.log_ratio({0: 20.0, 1: 40.0, 2: 80.0}, {0: 10.0, 1: 10.0, 2: 10.0})
    half = 4.3027 * math.log(2) / math.sqrt(3)
    assert interval.estimate == pytest.approx(4.0) and interval.log_scale
    assert interval.low == pytest.approx(4.0 * math.exp(-half), rel=1e-3)
    assert interval.high == pytest.approx(4.0 * math.exp(half), rel=1e-3)


def test_constant_ratios_have_no_width():
    interval = stats.log_ratio({0: 60.0, 1: 120.0, 2: 90.0}, {0: 10.0, 1: 20.0, 2: 15.0})
    assert interval.low == pytest.approx(6.0) and interval.high == pytest.approx(6.0)


SIMULATIONS = 20_000


def coverage(intervals, truth):
    return sum(i.low <= truth <= i.high for i in intervals) / SIMULATIONS


@pytest.mark.parametrize("n", [3, 5])
def test_the_difference_interval_covers_the_true_effect_95_percent_of_the_time(n):
    rng = np.random.default_rng(n)
    draws = rng.normal(0.02, 0.015, size=(SIMULATIONS, n))
    assert coverage(map(stats.mean_interval, draws), 0.02) == pytest.approx(0.95, abs=0.01)


@pytest.mark.parametrize("n", [3, 5])
def test_the_ratio_interval_covers_the_true_ratio_95_percent_of_the_time(n):
    # iterations to a target vary multiplicatively from seed to seed: lognormal per-seed ratios
    rng = np.random.default_rng(100 + n)
    fast = rng.lognormal(np.log(400), 0.3, size=(SIMULATIONS, n))
    slow = fast * rng.lognormal(np.log(1.6), 0.25, size=(SIMULATIONS, n))
    intervals = (stats.log_ratio(dict(enumerate(a)), dict(enumerate(b))) for a, b in zip(slow, fast))
    assert coverage(intervals, 1.6) == pytest.approx(0.95, abs=0.01)


def test_one_sided_p_values_agree_with_scipys_one_sample_t_test():
    from scipy.stats import ttest_1samp

    values = [0.012, 0.031, -0.004, 0.02]
    interval = stats.mean_interval(values)
    assert stats.one_sided_p(interval, 0.0, above=True) == pytest.approx(
        ttest_1samp(values, 0.0, alternative="greater").pvalue)
    assert stats.one_sided_p(interval, 0.01, above=False) == pytest.approx(
        ttest_1samp(values, 0.01, alternative="less").pvalue)
    ratio = stats.log_ratio({0: 3.0, 1: 5.0, 2: 4.0}, {0: 2.0, 1: 2.0, 2: 2.0})
    logs = [math.log(1.5), math.log(2.5), math.log(2.0)]
    assert stats.one_sided_p(ratio, 1.0, above=True) == pytest.approx(
        ttest_1samp(logs, 0.0, alternative="greater").pvalue)
    assert math.isnan(stats.one_sided_p(stats.mean_interval([0.1]), 0.0, above=True))


def test_seeds_for_80_percent_power_at_a_level_match_a_simulation():
    # an effect one sd from the null, one-sided test at 1%: n seeds reject with >= 80% probability, n - 1 do not
    level = 0.01
    n = stats.seeds_needed(1.0, 1.0, level)
    rng = np.random.default_rng(0)

    def simulated_power(seeds):
        return sum(stats.one_sided_p(stats.mean_interval(rng.normal(1.0, 1.0, seeds)), 0.0, True) <= level
                   for _ in range(4000)) / 4000

    assert 0.78 <= simulated_power(n) and simulated_power(n - 1) < 0.80
    assert stats.seeds_needed(0.0, 1.0, level) is None and stats.seeds_needed(1e-6, 1.0, level, most=50) is None
    # the detectable effect at n seeds is the effect those seeds reach 80% power for
    effect = stats.detectable_effect(n, 1.0, level)
    assert stats.power_of(n, effect, 1.0, level) == pytest.approx(0.80, abs=1e-6) and effect <= 1.0


def test_the_sd_upper_bound_covers_the_true_sd_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    df = 4
    samples = rng.normal(0.0, 2.0, size=(20_000, df + 1))
    bounds = [stats.sd_upper_bound(float(row.std(ddof=1)), df) for row in samples]
    assert np.mean(np.array(bounds) >= 2.0) == pytest.approx(0.95, abs=0.01)


def test_holm_counts_an_untestable_hypothesis_at_p_1_and_its_levels_agree_with_its_adjusted_p():
    p_values = {"a": 0.001, "b": 0.03, "c": 0.04, "d": math.nan}
    adjusted = stats.holm_adjusted(p_values)  # m = 4, d at p = 1
    assert adjusted == pytest.approx({"a": 0.004, "b": 0.09, "c": 0.09, "d": 1.0})
    levels = stats.holm_levels(p_values)
    # a is tested at 0.05/4 and rejected; b at 0.05/3 is not, so b, c and d are all decided at 0.05/3
    assert levels == pytest.approx({"a": 0.0125, "b": 0.05 / 3, "c": 0.05 / 3, "d": 0.05 / 3})
    rng = np.random.default_rng(3)
    for _ in range(200):  # rejected at its level <=> rejected by its adjusted p, whatever the p-values
        drawn = {name: float(p) for name, p in zip("abcdef", rng.uniform(0, 0.06, 6) ** 2 * 10)}
        adjusted, levels = stats.holm_adjusted(drawn), stats.holm_levels(drawn)
        assert {k: drawn[k] <= levels[k] for k in drawn} == {k: adjusted[k] <= 0.05 for k in drawn}


def test_a_one_sided_bound_clears_the_null_exactly_when_the_test_rejects_at_that_level():
    rng = np.random.default_rng(4)
    for _ in range(200):
        interval = stats.mean_interval(list(rng.normal(0.01, 0.01, 5)))
        level = float(rng.uniform(0.001, 0.05))
        rejects = stats.one_sided_p(interval, 0.0, above=True) <= level
        assert (stats.one_sided_bound(interval, level, lower=True) > 0) == rejects
    ratio = stats.log_ratio({1: 2.0, 2: 3.0, 3: 2.5}, {1: 1.0, 2: 1.0, 3: 1.0})
    assert stats.one_sided_bound(ratio, 0.025, lower=True) == pytest.approx(ratio.low)
    assert stats.one_sided_bound(ratio, 0.025, lower=False) == pytest.approx(ratio.high)


def test_the_smoothed_crossing_interpolates_and_no_tie_at_one_log_point_decides():
    curve = [{"iteration": 10 * i, "train_error": e} for i, e in enumerate((0.9, 0.7, 0.5, 0.3, 0.2, 0.1))]
    crossing = stats.smoothed_crossing(curve, 0.25)  # 3-point means 0.7, 0.5, 0.333, 0.2: between 40 and 50
    assert crossing.reached and crossing.iteration == pytest.approx(40 + 10 * (1 / 3 - 0.25) / (1 / 3 - 0.2))
    tied = [{"iteration": 10 * i, "train_error": e} for i, e in enumerate((0.6, 0.55, 0.5, 0.5, 0.5))]
    assert not stats.smoothed_crossing(tied, 0.49).reached  # a curve that only touches 0.5 never crosses 0.49
    assert stats.smoothed_crossing(curve, 0.05) == stats.Crossing(50.0, False)


def test_iterations_to_target_first_crossing_and_censoring():
    curve = [{"iteration": 10, "train_error": 0.9}, {"iteration": 20, "train_error": 0.4},
             {"iteration": 30, "train_error": 0.24}, {"iteration": 40, "train_error": 0.3},
             {"iteration": 50, "train_error": 0.2}]
    assert stats.iterations_to_target(curve, 0.25) == stats.Crossing(30, True)
    assert stats.iterations_to_target(curve, 0.4) == stats.Crossing(20, True)
    assert stats.iterations_to_target(curve, 0.1) == stats.Crossing(50, False)


def test_the_constrained_holm_tests_first_at_alpha_over_the_claims_and_never_below_holm():
    p = {("C1", "effect"): 0.001, ("C1", "small"): 0.9, ("C2", "effect"): 0.004, ("C2", "small"): 0.012,
         ("C3", "effect"): 0.02, ("C3", "small"): 0.5}
    levels = stats.constrained_holm_levels(p)
    # three claims open: 0.05/3 for 0.001, 0.004 and 0.012 (C2's second: C1 and C3 still open, C2 closed after
    # it); then C1 and C3 open: 0.05/2 = 0.025 clears 0.02; then C1 and C3 each one left: 0.05/2 stops at 0.5.
    assert levels[("C1", "effect")] == levels[("C2", "effect")] == pytest.approx(0.05 / 3)
    assert levels[("C2", "small")] == pytest.approx(0.05 / 3)
    assert levels[("C3", "effect")] == pytest.approx(0.05 / 2)
    assert levels[("C3", "small")] == levels[("C1", "small")] == pytest.approx(0.05 / 2)
    holm = stats.holm_levels({f"{c}-{h}": v for (c, h), v in p.items()})
    assert all(levels[key] >= holm[f"{key[0]}-{key[1]}"] for key in p)


def test_the_constrained_holms_adjusted_p_rejects_exactly_where_its_levels_do():
    rng = np.random.default_rng(5)
    for _ in range(200):
        p = {(f"C{c}", side): float(rng.uniform(0, 0.02) if rng.random() < 0.5 else rng.uniform())
             for c in range(6) for side in ("direction", "size")}
        levels, adjusted = stats.constrained_holm_levels(p), stats.constrained_holm_adjusted(p)
        assert all((adjusted[key] <= 0.05) == (p[key] <= levels[key]) for key in p)
    assert stats.constrained_holm_adjusted({("C1", "a"): 0.01, ("C1", "b"): 0.5, ("C2", "a"): 0.02}) == \
        {("C1", "a"): 0.02, ("C2", "a"): 0.04, ("C1", "b"): 0.5}


@pytest.mark.parametrize("effects", ["all at zero", "all at the threshold", "mixed"])
def test_the_constrained_holms_family_wise_error_is_at_most_5_percent_by_simulation(effects):
    """13 claims, 8 seeds each, a one-sided t test of each claim's two nulls (effect <= 0; effect >= 1);
    each true effect on the boundary of one of its nulls, where the error is largest."""
    rng = np.random.default_rng(31)
    claims, seeds, reps = 13, 8, 4000
    truth = {"all at zero": np.zeros(claims), "all at the threshold": np.ones(claims),
             "mixed": np.arange(claims) % 2.0}[effects]
    from scipy.stats import t as student

    errors = 0
    for _ in range(reps):
        data = truth[:, None] + rng.standard_normal((claims, seeds))
        centre, se = data.mean(axis=1), data.std(axis=1, ddof=1) / math.sqrt(seeds)
        p_effect = student.sf(centre / se, seeds - 1)  # null: effect <= 0
        p_small = student.cdf((centre - 1) / se, seeds - 1)  # null: effect >= 1
        p = {**{(str(c), "effect"): p_effect[c] for c in range(claims)},
             **{(str(c), "small"): p_small[c] for c in range(claims)}}
        levels = stats.constrained_holm_levels(p)
        true_nulls = [(str(c), "effect" if truth[c] == 0 else "small") for c in range(claims)]
        errors += any(p[key] <= levels[key] for key in true_nulls)
    rate = errors / reps
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    assert rate > 0.02  # not so strict that it never errs: the first step is at alpha/13, not alpha/26
