"""The adversarial check's math, as pure functions: robust accuracy, minimal epsilon, quantile intervals, masking signs.

No I/O and no models: arrays in, numbers out, so each is tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def robust_correct(clean_correct: np.ndarray, predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)`` robust under an attack: right on the clean input and on the adversarial one.

    An example the model already gets wrong is not robust at any radius, whatever the attack returned for it.
    """
    return np.asarray(clean_correct, dtype=bool) & (np.asarray(predicted) == np.asarray(labels))


def minimal_epsilons(correct: np.ndarray, clean_correct: np.ndarray, epsilons: Sequence[float]) -> np.ndarray:
    """Per example, the smallest epsilon of the list whose attack flips it: 0 if wrong when clean, ``inf`` if none does.

    Args:
        correct: ``(E, N)`` robust or not at each epsilon, epsilons in increasing order.
        clean_correct: ``(N,)``.
    """
    eps = np.asarray(epsilons, dtype=np.float64)
    flipped = ~np.asarray(correct, dtype=bool)  # (E, N)
    first = np.where(flipped.any(0), eps[flipped.argmax(0)], np.inf)
    return np.where(np.asarray(clean_correct, dtype=bool), first, 0.0)


def brackets(correct: np.ndarray, clean_correct: np.ndarray, epsilons: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per example, the list's bracket of its minimal epsilon: ``(low, high)`` with the attack flipping it at ``high``
    (its first flip on the list) and not at ``low`` (the epsilon before, or 0).

    Wrong when clean: ``(0, 0)``; never flipped: ``(largest epsilon, inf)``, censored. ``high`` is ``minimal_epsilons``.
    """
    eps = np.asarray(epsilons, dtype=np.float64)
    high = minimal_epsilons(correct, clean_correct, epsilons)
    flipped = np.isfinite(high) & (high > 0)
    below = np.concatenate([[0.0], eps])[np.searchsorted(eps, np.where(flipped, high, 0.0))]  # the list epsilon under ``high``
    low = np.where(flipped, below, np.where(np.isinf(high), eps[-1], 0.0))
    return low, high


def bisect(low: np.ndarray, high: np.ndarray, flips: Callable[[np.ndarray, np.ndarray], np.ndarray], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Narrow each bracket ``(low, high]`` of a minimal epsilon by bisection: ``steps`` halvings, every example at once.

    ``flips(rows, eps)`` attacks the examples ``rows`` (indices), each at its own
    radius ``eps``, in one batch, and says which it flipped. A flip moves an
    example's ``high`` down to that radius, a failure moves ``low`` up; as each
    radius tried lies below ``high``, the final ``high`` is the smallest radius
    seen to flip the example (attacks are not perfectly monotone in epsilon, so
    this is an upper bound on its minimal epsilon, as the list's was). Brackets
    that are empty (wrong when clean) or open (censored, ``high`` infinite) are
    left as they are.

    Returns:
        ``(high, low)`` after bisection: the minimal epsilon found and the largest radius that failed below it.
    """
    low, high = np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
    rows = np.flatnonzero(np.isfinite(high) & (high > low))
    for _ in range(steps if len(rows) else 0):
        mid = (low[rows] + high[rows]) / 2
        hit = np.asarray(flips(rows, mid), dtype=bool)
        high[rows[hit]], low[rows[~hit]] = mid[hit], mid[~hit]
    return high, low


def quantile_interval(values: np.ndarray, q: float, level: float = 0.95) -> tuple[float, float, float]:
    """The ``q``-quantile of ``values`` and its distribution-free interval from order statistics.

    The interval ``[x_(l), x_(u)]`` takes ``l`` and ``u`` from the Binomial(n, q)
    quantiles at ``(1 - level) / 2`` and ``(1 + level) / 2`` (Conover 1999,
    sec. 3.2): it covers the true quantile with probability about ``level``
    for any continuous distribution and needs no resampling. Values may be
    ``inf`` (censored: larger than anything measured); the caller caps them.
    The point is the order statistic ``x_(ceil(n q))``, always inside.
    """
    from scipy.stats import binom

    v = np.sort(np.asarray(values, dtype=np.float64))
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    k = min(max(int(np.ceil(n * q)), 1), n)
    low = int(binom.ppf((1 - level) / 2, n, q))
    high = int(binom.ppf((1 + level) / 2, n, q)) + 1
    low, high = min(max(low, 1), k), max(min(high, n), k)
    return float(v[k - 1]), float(v[low - 1]), float(v[high - 1])


def shifted(gained: np.ndarray, lost: np.ndarray, tolerance: float, level: float = 0.05) -> bool:
    """Whether paired robust flags moved up by more than ``tolerance``, beyond chance.

    ``gained``/``lost``: ``(n,)`` examples robust only in the second / only in
    the first measurement. Flags when the rise ``(gained - lost) / n`` exceeds
    ``tolerance`` and the exact sign test on the discordant examples (McNemar's
    exact test, one-sided) gives a p-value below ``level``: one example's
    change on a small subset is not a finding.
    """
    from scipy.stats import binom

    up, down, n = int(np.sum(gained)), int(np.sum(lost)), len(gained)
    if n == 0 or (up - down) / n <= tolerance:
        return False
    return float(binom.sf(up - 1, up + down, 0.5)) < level


def rises(epsilons: Sequence[float], correct: np.ndarray, tolerance: float) -> list[tuple[float, float, float, float]]:
    """``(smaller eps, larger eps, accuracy there, accuracy at the larger)`` wherever robust accuracy rises (see ``shifted``).

    ``correct``: ``(E, n)`` robust flags, epsilons increasing. A larger ball
    holds every point of a smaller one, so an example the attack flipped at
    the smaller radius but not at the larger is the attack failing, not the
    model being robust (Carlini et al. 2019, sec. 5.3).
    """
    c = np.asarray(correct, dtype=bool)
    out = []
    for i in range(len(c)):
        for j in range(i + 1, len(c)):
            if shifted(c[j] & ~c[i], c[i] & ~c[j], tolerance):
                out.append((float(epsilons[i]), float(epsilons[j]), float(c[i].mean()), float(c[j].mean())))
    return out


def zero_gradient_share(gradients: np.ndarray) -> float:
    """The share of examples whose loss gradient is exactly zero everywhere: a gradient attack cannot move them at all."""
    g = np.asarray(gradients).reshape(len(gradients), -1)
    return float((np.abs(g).max(1) == 0).mean()) if len(g) else 0.0
