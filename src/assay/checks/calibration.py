"""The ``calibration`` check: do the predicted probabilities mean what they say?

Expected calibration error (ECE) with equal-width confidence bins (Guo et al.
2017, eq. 3; Naeini et al. 2015), the multi-class Brier score (Brier 1950) and
negative log-likelihood, each with a bootstrap interval, plus the data for a
reliability diagram; then the same after temperature scaling fitted on the
validation split by NLL (Guo et al. 2017), so the report shows what a
one-parameter fix would buy.
"""

from __future__ import annotations

import numpy as np

from .base import Check, CheckContext, Evidence, register_check
from .stats import bootstrap, percentile_interval


def _bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    # Bins are [k/n, (k+1)/n); a confidence of exactly 1.0 gets a bin of its
    # own (index n_bins), as torchmetrics' bucketize(right=True) does.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges, confidence, side="right") - 1


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: sum over bins of |accuracy - confidence| weighted by bin size.

    Args:
        probs: ``(N, K)`` class probabilities.
        labels: ``(N,)`` true classes.
        n_bins: equal-width bins over [0, 1].
    """
    confidence = probs.max(axis=1).astype(np.float64)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    return float(ece_batched(confidence, correct, n_bins, np.arange(len(labels))[None])[0])


def ece_batched(confidence: np.ndarray, correct: np.ndarray, n_bins: int, index: np.ndarray) -> np.ndarray:
    """ECE for each resample row of ``index`` ``(b, n)`` -> ``(b,)``."""
    b, n = index.shape
    slots = n_bins + 1
    bins = _bins(confidence, n_bins)[index] + (np.arange(b) * slots)[:, None]
    gap = np.bincount(bins.ravel(), weights=(correct - confidence)[index].ravel(), minlength=b * slots)
    return np.abs(gap.reshape(b, slots)).sum(axis=1) / n


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Per-bin count, accuracy and mean confidence for a reliability diagram."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    bins = np.minimum(_bins(confidence, n_bins), n_bins - 1)  # fold the 1.0 bin into the last for plotting
    out = []
    for k in range(n_bins):
        member = bins == k
        count = int(member.sum())
        out.append({
            "lo": k / n_bins,
            "hi": (k + 1) / n_bins,
            "count": count,
            "accuracy": float(correct[member].mean()) if count else None,
            "confidence": float(confidence[member].mean()) if count else None,
        })
    return out


def brier_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example multi-class Brier score: sum_k (p_k - 1[y = k])^2, in [0, 2]."""
    onehot = np.eye(probs.shape[1])[labels]
    return ((probs - onehot) ** 2).sum(axis=1)


def nll_loss(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-15) -> np.ndarray:
    """Per-example negative log-likelihood of the true class (clipped as scikit-learn's log_loss)."""
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising validation NLL of softmax(logits / T) (Guo et al. 2017, sec. 4.2).

    One parameter, convex in log T in practice; a bounded scalar search is exact enough.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    z = logits.astype(np.float64)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        return -log_softmax(z / np.exp(log_t), axis=1)[rows, labels].mean()

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@register_check
class Calibration(Check):
    """Whether confidence matches accuracy, before and after temperature scaling fitted on validation."""

    name = "calibration"
    metrics = {"ece": False, "brier_loss": False, "nll_loss": False, "ece_temperature_scaled": False, "nll_loss_temperature_scaled": False}
    splits = ("val", "test")

    def __init__(self, *, n_bins: int = 15) -> None:
        if n_bins < 1:
            raise ValueError(f"'n_bins' must be at least 1, got {n_bins}")
        self.n_bins = n_bins

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        p = context.predict(candidate)
        probs, y = p.probs, p.labels
        confidence = probs.max(axis=1)
        correct = (p.predicted == y).astype(np.float64)
        brier, nll = brier_loss(probs, y), nll_loss(probs, y)

        def stats(index: np.ndarray) -> np.ndarray:
            return np.column_stack([ece_batched(confidence, correct, self.n_bins, index), brier[index].mean(1), nll[index].mean(1)])

        low, high = percentile_interval(bootstrap(stats, len(y), n_boot=context.n_boot, seed=context.seed))
        ece = expected_calibration_error(probs, y, self.n_bins)
        val = context.predict(candidate, split="val")
        temperature = fit_temperature(val.logits, val.labels)
        scaled = softmax(p.logits, temperature)
        scaled_conf, scaled_nll = scaled.max(axis=1), nll_loss(scaled, y)

        def scaled_stats(index: np.ndarray) -> np.ndarray:
            return np.column_stack([ece_batched(scaled_conf, correct, self.n_bins, index), scaled_nll[index].mean(1)])

        s_low, s_high = percentile_interval(bootstrap(scaled_stats, len(y), n_boot=context.n_boot, seed=context.seed))
        details = {
            "n_bins": self.n_bins,
            "bins": reliability_bins(probs, y, self.n_bins),
            "bins_temperature_scaled": reliability_bins(scaled, y, self.n_bins),
            "temperature": temperature,
            "mean_confidence": float(confidence.mean()),
            "accuracy": float(correct.mean()),
        }
        return [
            self.evidence(candidate, "ece", ece, (low[0], high[0]), details=details, figures=("reliability_diagram",)),
            self.evidence(candidate, "brier_loss", brier.mean(), (low[1], high[1])),
            self.evidence(candidate, "nll_loss", nll.mean(), (low[2], high[2])),
            self.evidence(candidate, "ece_temperature_scaled", expected_calibration_error(scaled, y, self.n_bins), (s_low[0], s_high[0]),
                          details={"temperature": temperature, "fitted_on": "val"}),
            self.evidence(candidate, "nll_loss_temperature_scaled", scaled_nll.mean(), (s_low[1], s_high[1]), details={"temperature": temperature}),
        ]
