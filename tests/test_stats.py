"""gconv_edu.stats: Student-t quantiles against printed tables, paired CIs by hand and by their coverage, the
non-inferiority rule, and the power statement checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gconv_edu.stats import minimum_detectable_effect, paired_difference, t_quantile

# Student-t quantiles from standard tables (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2), 4 decimals.
TABLE = [
    (0.975, 1, 12.7062),
    (0.975, 2, 4.3027),
    (0.975, 7, 2.3646),
    (0.975, 15, 2.1314),
    (0.975, 30, 2.0423),
    (0.95, 7, 1.8946),
    (0.90, 7, 1.4149),
    (0.995, 10, 3.1693),
]


@pytest.mark.parametrize(("probability", "df", "expected"), TABLE)
def test_t_quantile_matches_the_tables(probability, df, expected):
    assert t_quantile(probability, df) == pytest.approx(expected, abs=2e-4)


def test_t_quantile_tends_to_the_normal_quantile():
    assert t_quantile(0.975, 100_000) == pytest.approx(1.95996, abs=1e-3)


@pytest.mark.parametrize(
    ("probability", "df", "match"),
    [(0.5, 7, "probability"), (1.0, 7, "probability"), (0.975, 0, "df"), (0.975, 2.5, "df")],
)
def test_t_quantile_rejects_bad_arguments(probability, df, match):
    with pytest.raises(ValueError, match=match):
        t_quantile(probability, df)


def test_paired_difference_by_hand():
    a = np.array([0.80, 0.82, 0.85, 0.79])
    b = np.array([0.81, 0.80, 0.86, 0.80])
    result = paired_difference(a, b)
    differences = b - a  # 0.01, -0.02, 0.01, 0.01
    mean, std = differences.mean(), differences.std(ddof=1)
    half = 3.1824 * std / math.sqrt(4)  # t_{0.975, 3} = 3.1824
    np.testing.assert_allclose(result.differences, differences)
    assert result.mean == pytest.approx(mean) and result.std == pytest.approx(std)
    assert result.low == pytest.approx(mean - half, rel=1e-4) and result.high == pytest.approx(mean + half, rel=1e-4)


def test_paired_interval_covers_the_true_difference_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials, n, true_difference = 4000, 8, 0.3
    covered = 0
    for _ in range(trials):
        a = rng.normal(0.0, 1.0, n)
        b = a + true_difference + rng.normal(0.0, 0.5, n)  # paired: the seed's own level cancels
        result = paired_difference(a, b)
        covered += result.low <= true_difference <= result.high
    # binomial SE of a 95 % rate over 4000 trials: 0.34 %; 4 SE either side
    assert abs(covered / trials - 0.95) < 0.014


def test_non_inferiority_follows_the_lower_bound():
    close = paired_difference(np.zeros(8), np.array([-0.5, 0.5, -0.2, 0.2, -0.1, 0.1, 0.0, 0.0]) / 100)
    assert close.low > -0.02 and close.non_inferior(0.02)
    worse = paired_difference(np.zeros(8), np.array([-3.0, -2.5, -3.5, -2.0, -4.0, -3.0, -2.8, -3.2]) / 100)
    assert worse.high < 0 and not worse.non_inferior(0.02)
    wide = paired_difference(np.zeros(8), np.array([-6.0, 5.0, -4.0, 3.0, -5.0, 4.0, 0.0, 1.0]) / 100)
    assert wide.low < -0.02 < wide.high and not wide.non_inferior(0.02)


def test_paired_difference_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same length"):
        paired_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference(np.zeros(1), np.zeros(1))


def test_minimum_detectable_effect_gives_about_80_percent_power():
    """A true difference equal to the MDE is detected (two-sided paired t-test at 5 %) in about 80 % of trials."""
    rng = np.random.default_rng(1)
    n, std = 8, 1.0
    effect = minimum_detectable_effect(std, n)
    assert effect == pytest.approx((2.3646 + 0.8960) * std / math.sqrt(n), rel=1e-3)  # t_{0.8, 7} = 0.8960
    trials = 3000
    detected = sum(paired_difference(np.zeros(n), rng.normal(effect, std, n)).low > 0 for _ in range(trials))
    # the textbook formula slightly overstates the exact (noncentral t) requirement; power lands in [0.78, 0.86]
    assert 0.76 < detected / trials < 0.88
    with pytest.raises(ValueError, match="n=1"):
        minimum_detectable_effect(1.0, 1)
