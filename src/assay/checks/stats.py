"""Bootstrap intervals shared by every check.

The nonparametric percentile bootstrap (Efron & Tibshirani 1993, ch. 13):
resample the test examples with replacement, recompute the statistic, and
take the 2.5th and 97.5th percentiles. Resamples are drawn in chunks so
memory stays bounded as the test split grows. For a handful of repeated
runs (labelled draws), the Student-t interval of their mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]


def bootstrap(statistic: Statistic, n: int, *, n_boot: int = 1000, seed: int = 0, chunk_elements: int = 2_000_000) -> np.ndarray:
    """Evaluate ``statistic`` on ``n_boot`` resamples of ``n`` examples.

    Args:
        statistic: maps an index array ``(b, n)`` to values ``(b,)`` or ``(b, m)``.
        n: number of examples.

    Returns:
        ``(n_boot,)`` or ``(n_boot, m)`` bootstrap replicates.
    """
    rng = np.random.default_rng(seed)
    per_chunk = max(1, chunk_elements // max(n, 1))
    out = []
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        out.append(np.asarray(statistic(rng.integers(0, n, size=(b, n)))))
    return np.concatenate(out, axis=0)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile bounds along the first axis (NaNs ignored)."""
    import warnings

    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # a column that is NaN in every resample (an absent class) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(replicates, tail, axis=0), np.nanpercentile(replicates, 100 - tail, axis=0)


def mean_interval(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean of per-example ``values``."""
    values = np.asarray(values, dtype=np.float64)
    low, high = percentile_interval(bootstrap(lambda idx: values[idx].mean(axis=1), len(values), n_boot=n_boot, seed=seed))
    return float(low), float(high)


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, k: int, index: np.ndarray) -> np.ndarray:
    """Confusion matrices ``(b, K, K)`` (rows true, columns predicted) for each resample row of ``index``."""
    b = index.shape[0]
    cells = y_true[index] * k + y_pred[index] + (np.arange(b) * k * k)[:, None]  # (b, n)
    return np.bincount(cells.ravel(), minlength=b * k * k).reshape(b, k, k)


def resample_counts(index: np.ndarray, n: int) -> np.ndarray:
    """How often each example occurs in each resample row ``(b, n)``: a mean over a
    resample is then one matrix product, ``values @ counts.T / n``."""
    b = index.shape[0]
    return np.bincount((index + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of a few repeated measurements (at least two), e.g. accuracy over labelled draws."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd == 0:
        return mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def wilson_interval(errors: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``errors / n`` (Wilson 1927); never empty, always holds the point."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # Wilson's interval holds p exactly; the clamp only removes rounding (1.4e-17 above a p of 0).
    return float(min(p, max(0.0, centre - half))), float(max(p, min(1.0, centre + half)))
