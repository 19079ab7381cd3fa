"""Interval coverage: each method, on data simulated with a known truth, covers it in >= 93% of 1,000 seeded repetitions.

The nominal level is 95%; with 1,000 repetitions the Monte Carlo standard
error is about 0.7 points, so 93% leaves room for chance but not for a method
that is wrong. A negative control shows the test can fail: the percentile
bootstrap of accuracy, which the checks used before, covers a true accuracy of
0.98 from 20 examples in well under half of the repetitions.
"""

import numpy as np
import pytest

from assay.checks.calibration import _bins, ece_interval
from assay.stats import bootstrap, bootstrap_interval, paired_difference_interval, percentile_interval, proportion_interval

REPS = 1000
FLOOR = 0.93


@pytest.mark.parametrize("n", [20, 1000])
@pytest.mark.parametrize("p", [0.02, 0.5, 0.98])
def test_exact_proportion_interval_covers(p, n):
    x = np.random.default_rng(round(1000 * p) + n).binomial(n, p, REPS)
    low, high = proportion_interval(x, np.full(REPS, n))
    assert np.mean((low <= p) & (p <= high)) >= FLOOR


def test_negative_control_percentile_bootstrap_of_accuracy_undercovers_near_one():
    rng = np.random.default_rng(7)
    p, n, hits = 0.98, 20, 0
    for r in range(REPS):
        correct = (rng.random(n) < p).astype(float)
        low, high = percentile_interval(bootstrap(lambda idx: correct[idx].mean(1), n, n_boot=200, seed=r))
        hits += low <= p <= high
    assert hits / REPS < 0.5  # 20 of 20 right (67% of repetitions) gives [1, 1]


@pytest.mark.parametrize(("cells", "n"), [
    ((0.97, 0.02, 0.005, 0.005), 100),  # rare disagreements, the reference better: a compressed model's accuracy drop
    ((0.98, 0.005, 0.005, 0.01), 269),  # rare disagreements, no true difference
    ((0.60, 0.15, 0.10, 0.15), 1000),  # frequent disagreements
])
def test_newcombe_paired_difference_covers(cells, n):
    """Cells: both right, only the first right, only the second right, both wrong."""
    rng = np.random.default_rng(n)
    truth = cells[1] - cells[2]
    hits = 0
    for _ in range(REPS):
        cell = rng.choice(4, size=n, p=cells)
        _, low, high = paired_difference_interval(cell <= 1, (cell == 0) | (cell == 2))
        hits += low <= truth <= high
    assert hits / REPS >= FLOOR


def test_bias_corrected_bootstrap_of_a_skewed_mean_covers():
    """A mean of skewed per-example losses (as Brier and NLL are), 100 examples."""
    rng = np.random.default_rng(3)
    truth, n, hits = 0.2, 100, 0  # exponential losses with mean 0.2
    for r in range(REPS):
        loss = rng.exponential(truth, n)
        low, high = bootstrap_interval(bootstrap(lambda idx: loss[idx].mean(1), n, n_boot=300, seed=r), loss.mean())
        hits += low <= truth <= high
    assert hits / REPS >= FLOOR


def _confidences(rng, n):
    return 1 - 0.3 * rng.beta(0.4, 3.0, n)  # most near 1, as a good classifier's top-label confidence


def _true_ece(accuracy_at, n_bins=15):
    c = _confidences(np.random.default_rng(99), 2_000_000)
    gap = np.bincount(_bins(c, n_bins), weights=accuracy_at(c) - c, minlength=n_bins + 1)
    return np.abs(gap).sum() / len(c)


@pytest.mark.parametrize("name", ["calibrated", "overconfident"])
def test_ece_interval_covers_the_true_ece(name):
    """Calibrated (true ECE 0, where a percentile bootstrap never reaches down) and overconfident by 0.04."""
    accuracy_at = (lambda c: c) if name == "calibrated" else (lambda c: np.clip(c - 0.04, 0, 1))
    truth = _true_ece(accuracy_at)
    rng = np.random.default_rng(11)
    n, hits = 300, 0
    for r in range(REPS):
        c = _confidences(rng, n)
        correct = (rng.random(n) < accuracy_at(c)).astype(float)
        low, high = ece_interval(c, correct, 15, n_boot=200, seed=r)
        hits += low <= truth <= high
    assert hits / REPS >= FLOOR


@pytest.mark.parametrize(("recalls", "support"), [
    ((1.0, 0.999, 0.99, 0.97, 0.96, 1.0, 0.98, 0.999, 0.95, 0.99), 27),  # a good digit classifier, 27 test images a class
    ((0.99,) * 10, 27),  # where combining the classes' exact intervals (MOVER) covered only 92%
    ((0.40, 0.97), (43, 314)),  # an imbalanced table: few positives, found poorly
])
def test_balanced_accuracy_interval_covers(recalls, support):
    from assay.stats import mean_of_proportions_interval

    recalls = np.asarray(recalls)
    support = np.broadcast_to(support, recalls.shape)
    truth = recalls.mean()
    rng = np.random.default_rng(len(recalls))
    hits = 0
    for _ in range(REPS):
        _, low, high = mean_of_proportions_interval(rng.binomial(support, recalls), support)
        hits += low <= truth <= high
    assert hits / REPS >= FLOOR
