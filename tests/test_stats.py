"""The statistics on inputs whose answers are known by hand."""

import math

import pytest

from reproduce import stats


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (10, 2.228), (30, 2.042),
                                          (40, 2.021), (60, 2.000), (120, 1.980), (10_000, 1.960)])
def test_t_quantiles_match_the_tables(df, expected):
    assert stats.t_quantile_975(df) == pytest.approx(expected, abs=1.5e-3)


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


def test_bootstrap_ratio_is_deterministic_and_brackets_the_estimate():
    slow = {0: 600.0, 1: 500.0, 2: 700.0, 3: 650.0}
    fast = {0: 100.0, 1: 110.0, 2: 90.0, 3: 105.0}
    first = stats.bootstrap_ratio(slow, fast)
    again = stats.bootstrap_ratio(slow, fast)
    assert first == again
    assert first.estimate == pytest.approx(2450 / 405)
    assert first.low <= first.estimate <= first.high
    assert first.low > 4 and first.high < 8


def test_bootstrap_ratio_of_constant_ratios_has_no_width():
    interval = stats.bootstrap_ratio({0: 60.0, 1: 120.0, 2: 90.0}, {0: 10.0, 1: 20.0, 2: 15.0})
    assert interval.low == pytest.approx(6.0) and interval.high == pytest.approx(6.0)


def test_seeds_needed_matches_the_t_interval():
    # sd 1, margin 1: n=7 gives 2.447/sqrt(7)=0.925 < 1, n=6 gives 2.571/sqrt(6)=1.05
    assert stats.seeds_needed(0.0, 1.0, 1.0) == 7
    assert stats.seeds_needed(0.0, 0.0, 1.0) == 2
    assert stats.seeds_needed(0.0, 1.0, 0.0) is None
    assert stats.seeds_needed(0.0, 1.0, 1e-6, most=50) is None


def test_iterations_to_target_first_crossing_and_censoring():
    curve = [{"iteration": 10, "train_error": 0.9}, {"iteration": 20, "train_error": 0.4},
             {"iteration": 30, "train_error": 0.24}, {"iteration": 40, "train_error": 0.3},
             {"iteration": 50, "train_error": 0.2}]
    assert stats.iterations_to_target(curve, 0.25) == stats.Crossing(30, True)
    assert stats.iterations_to_target(curve, 0.4) == stats.Crossing(20, True)
    assert stats.iterations_to_target(curve, 0.1) == stats.Crossing(50, False)
