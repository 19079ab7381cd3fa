"""Interval methods against reference implementations, and the property every interval keeps: it holds its point."""

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from assay.stats import (
    bootstrap,
    bootstrap_interval,
    paired_difference_interval,
    percentile_interval,
    proportion_interval,
    wilson_interval,
)


@pytest.mark.parametrize("method", ["wilson", "exact"])
@pytest.mark.parametrize("n", [1, 4, 7, 20, 269, 1000])
def test_proportion_intervals_equal_scipy_for_every_count(n, method):
    """Wilson and Clopper-Pearson ("exact") against scipy's binomtest, at every count and two levels."""
    interval = wilson_interval if method == "wilson" else proportion_interval
    counts = np.arange(n + 1)
    low, high = interval(counts, np.full(n + 1, n))
    for x in counts:
        reference = binomtest(int(x), n).proportion_ci(confidence_level=0.95, method=method)
        assert (low[x], high[x]) == pytest.approx((reference.low, reference.high), abs=1e-12)
        assert 0.0 <= low[x] <= x / n <= high[x] <= 1.0
    assert interval(3, 7) == pytest.approx(tuple(binomtest(3, 7).proportion_ci(method=method)), abs=1e-12)
    assert interval(3, 7, level=0.8) == pytest.approx(tuple(binomtest(3, 7).proportion_ci(0.8, method=method)), abs=1e-12)
    assert interval(0, 0) == (0.0, 1.0)


def test_exact_interval_never_claims_certainty():
    # The figures of issue 9: accuracy 269 of 269 and a false-positive rate of 4 of 4 were [1.000, 1.000].
    assert proportion_interval(269, 269) == pytest.approx((0.98638, 1.0), abs=1e-5)
    assert proportion_interval(4, 4) == pytest.approx((0.39764, 1.0), abs=1e-5)
    assert proportion_interval(0, 3)[0] == 0.0 and proportion_interval(3, 3)[1] == 1.0


def test_wilson_never_claims_certainty_and_is_exact_at_the_edges():
    # The figures of issue 9: accuracy 269/269 and a false-positive rate of 4/4 were [1.000, 1.000].
    low, high = wilson_interval(269, 269)
    assert high == 1.0 and low == pytest.approx(0.98592, abs=1e-5)
    low, high = wilson_interval(4, 4)
    assert high == 1.0 and low == pytest.approx(0.51011, abs=1e-5)
    # Exactly 0 and 1 where the formula rounds to 1.39e-17 and 0.9999999999999999.
    assert wilson_interval(0, 3)[0] == 0.0 and wilson_interval(3, 3)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(np.array([0, 0]), np.array([0, 5]))
    assert low.tolist() == [0.0, 0.0] and high[0] == 1.0 and 0 < high[1] < 1


def test_bias_corrected_interval_follows_efrons_formula():
    rng = np.random.default_rng(1)
    replicates = rng.gamma(2.0, 1.0, 4000)  # skewed, no ties
    point = 1.6
    z0 = norm.ppf(np.mean(replicates < point))
    expected = np.percentile(replicates, [100 * norm.cdf(2 * z0 - 1.959963984540054), 100 * norm.cdf(2 * z0 + 1.959963984540054)])
    assert bootstrap_interval(replicates, point) == pytest.approx(tuple(expected), rel=1e-12)
    # With the point at the replicates' median, z0 = 0 and it is the percentile interval.
    median = np.median(replicates[:-1])
    assert bootstrap_interval(replicates[:-1], median) == pytest.approx(tuple(np.ravel(percentile_interval(replicates[:-1]))), rel=1e-12)


def test_bias_corrected_interval_moves_against_the_bias_and_holds_its_point():
    rng = np.random.default_rng(2)
    # Resamples mostly above the estimate (an upward-biased statistic): the interval moves down.
    replicates = rng.normal(1.0, 0.1, (2000, 3))
    points = np.array([0.95, 1.0, 0.5])  # the last lies below every resample
    low, high = bootstrap_interval(replicates, points)
    plain_low, plain_high = percentile_interval(replicates)
    assert low[0] < plain_low[0] and high[0] < plain_high[0]
    assert np.all(low <= points) and np.all(points <= high)
    assert low[2] == 0.5  # reached down to the point, not the bootstrap range [0.8, 1.2]
    # NaN resamples are ignored; a column of NaN or a NaN point gives NaN.
    replicates[:100, 0] = np.nan
    replicates[:, 1] = np.nan
    low, high = bootstrap_interval(replicates, np.array([1.0, 1.0, np.nan]))
    assert np.isfinite([low[0], high[0]]).all() and np.isnan([low[1], high[1], low[2], high[2]]).all()


def test_a_bootstrap_of_a_mean_holds_its_point_on_real_shapes():
    values = np.r_[np.zeros(266), np.ones(3)]  # 3 errors in 269
    reps = bootstrap(lambda idx: values[idx].mean(1), len(values), n_boot=1000, seed=0)
    low, high = bootstrap_interval(reps, values.mean())
    assert low <= values.mean() <= high and low < high


def test_newcombe_paired_interval_holds_its_point_and_mirrors_for_every_table_of_12_pairs():
    from itertools import product

    for a, b, c in product(range(13), repeat=3):
        d = 12 - a - b - c
        if d < 0:
            continue
        first = np.array([1] * a + [1] * b + [0] * c + [0] * d, bool)
        second = np.array([1] * a + [0] * b + [1] * c + [0] * d, bool)
        difference, low, high = paired_difference_interval(first, second)
        assert difference == pytest.approx((b - c) / 12)
        assert -1 <= low <= difference <= high <= 1
        mirrored = paired_difference_interval(second, first)
        assert (mirrored[1], mirrored[2]) == pytest.approx((-high, -low), abs=1e-12)


def test_newcombe_does_not_claim_certainty_when_models_agree():
    same = np.r_[np.ones(266, bool), np.zeros(3, bool)]
    difference, low, high = paired_difference_interval(same, same)
    assert difference == 0.0 and low < 0 < high


def test_mean_of_proportions_follows_price_and_bonett():
    from assay.stats import mean_of_proportions_interval

    # K = 2, 8 of 10 and 3 of 10: p~ = 9/12 and 4/12, centre 0.541667, half-width 1.96 * sqrt(0.0341435) / 2.
    mean, low, high = mean_of_proportions_interval([8, 3], [10, 10])
    assert mean == pytest.approx(0.55)
    assert (low, high) == pytest.approx((0.541667 - 0.181082, 0.541667 + 0.181082), abs=1e-5)
    mean, low, high = mean_of_proportions_interval([27] * 10, [27] * 10)
    assert mean == 1.0 == high and 0.97 < low < 1.0
    assert mean_of_proportions_interval([5, 0], [5, 0])[0] == 1.0  # a class with no examples is left out


@pytest.mark.parametrize("n", [1, 20, 269, 1000])
def test_unseen_rate_is_scipys_exact_upper_bound_for_none_seen(n):
    from assay.stats import unseen_rate

    assert unseen_rate(n) == pytest.approx(binomtest(0, n).proportion_ci(method="exact").high, abs=1e-12)
    assert unseen_rate(n) == pytest.approx(1 - 0.025 ** (1 / n), abs=1e-12)  # closed form at 0 successes
