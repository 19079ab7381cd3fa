"""The nonparametric bootstrap (Efron & Tibshirani 1993), drawn in chunks so memory stays bounded, and its bias-corrected percentile interval."""

from __future__ import annotations

from collections.abc import Callable

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


def bootstrap_interval(replicates: np.ndarray, point, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected percentile interval of ``point`` from bootstrap ``replicates`` (NaNs ignored).

    With ``z0 = Phi^-1(share of replicates below the point)`` (ties counted
    half), the bounds are the replicates' ``Phi(2 z0 -/+ z)`` quantiles
    (Efron 1981; Efron & Tibshirani 1993, sec. 14.3). A statistic whose
    resamples sit mostly above its point (upward bias, as with a maximum or
    an absolute value) gets its interval moved down, and the other way round.

    Args:
        replicates: ``(B,)`` or ``(B, m)`` bootstrap values.
        point: the statistic on the full sample, scalar or ``(m,)``.
        level: the coverage, e.g. 0.95.

    Returns:
        ``(low, high)``, each shaped like ``point``; NaN where the point or every replicate is NaN.
    """
    from scipy.stats import norm

    reps = np.asarray(replicates, dtype=np.float64)
    scalar = reps.ndim == 1
    reps = reps.reshape(len(reps), -1)  # (B, m)
    theta = np.broadcast_to(np.asarray(point, dtype=np.float64), reps.shape[1:])
    valid = ~np.isnan(reps)
    count = valid.sum(axis=0)  # (m,)
    below = np.sum(reps < theta, axis=0) + 0.5 * np.sum(reps == theta, axis=0)
    safe = np.maximum(count, 1)
    # One half-replicate away from 0 and 1 keeps z0 finite when every resample lies on one side.
    z0 = norm.ppf(np.clip(below / safe, 0.5 / safe, 1 - 0.5 / safe))
    z = norm.ppf(0.5 + level / 2)
    ordered = np.sort(reps, axis=0)  # NaNs sort last, so the first ``count`` rows of a column are its values

    def quantile(q: np.ndarray) -> np.ndarray:  # linear interpolation, as np.quantile's default
        pos = q * (safe - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, safe - 1)
        cols = np.arange(ordered.shape[1])
        return ordered[lo, cols] + (pos - lo) * (ordered[hi, cols] - ordered[lo, cols])

    low, high = quantile(norm.cdf(2 * z0 - z)), quantile(norm.cdf(2 * z0 + z))
    # The bias-corrected interval holds the point whenever |z0| <= z, i.e. unless more than
    # (1 + level) / 2 of the resamples fall on one side of it. Past that the bootstrap says the
    # statistic is so biased that its distribution no longer surrounds the estimate; the interval
    # is then widened to reach the point rather than report a range that excludes the figure it
    # qualifies (the side it widens is the side the data gave no resample on).
    low, high = np.fmin(low, theta), np.fmax(high, theta)
    missing = (count == 0) | np.isnan(theta)
    low, high = np.where(missing, np.nan, low), np.where(missing, np.nan, high)
    if scalar and np.ndim(point) == 0:
        return float(low[0]), float(high[0])
    return low, high


def mean_interval(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean of per-example ``values``."""
    values = np.asarray(values, dtype=np.float64)
    return bootstrap_interval(bootstrap(lambda idx: values[idx].mean(axis=1), len(values), n_boot=n_boot, seed=seed), values.mean())


def resample_counts(index: np.ndarray, n: int) -> np.ndarray:
    """How often each example occurs in each resample row ``(b, n)``: a mean over a
    resample is then one matrix product, ``values @ counts.T / n``."""
    b = index.shape[0]
    return np.bincount((index + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
