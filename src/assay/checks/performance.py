"""The ``performance`` check: accuracy, macro-F1, per-class recall, with intervals.

Every metric is a pure function of a confusion matrix, written to work on a
stack of them ``(..., K, K)`` so one vectorised pass gives the point value
and all bootstrap replicates.
"""

from __future__ import annotations

import warnings

import numpy as np

from .base import Check, CheckContext, Evidence, register_check
from .stats import bootstrap, confusion_matrices, percentile_interval


def accuracy(cm: np.ndarray) -> np.ndarray:
    """Fraction correct: trace / total."""
    return np.trace(cm, axis1=-2, axis2=-1) / cm.sum(axis=(-2, -1))


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class ``(..., K)``; NaN for a class with no examples."""
    support = cm.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diagonal(cm, axis1=-2, axis2=-1) / support


def macro_f1(cm: np.ndarray) -> np.ndarray:
    """Unweighted mean F1 over classes that occur in the labels or predictions.

    F1 = 2TP / (2TP + FP + FN) (0 when a class is never predicted correctly),
    matching scikit-learn's ``f1_score(average="macro")`` with default labels.
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    fp = cm.sum(axis=-2) - tp
    fn = cm.sum(axis=-1) - tp
    denom = 2 * tp + fp + fn
    present = denom > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / np.where(present, denom, 1), 0.0)
    return f1.sum(axis=-1) / present.sum(axis=-1)


@register_check
class Performance(Check):
    """How often the candidate is right, overall and for each class."""

    name = "performance"
    metrics = {"accuracy": True, "macro_f1": True, "balanced_accuracy": True, "worst_class_recall": True}

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        p = context.predict(candidate)
        k = context.task.num_classes
        y, yhat = p.labels, p.predicted
        n = len(y)
        cm = confusion_matrices(y, yhat, k, np.arange(n)[None])[0]

        def stats(index: np.ndarray) -> np.ndarray:
            cms = confusion_matrices(y, yhat, k, index)  # (b, K, K)
            recall = per_class_recall(cms)
            with warnings.catch_warnings():  # a resample may miss a class entirely: NaN recall, by design
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.column_stack([accuracy(cms), macro_f1(cms), np.nanmean(recall, axis=1), np.nanmin(recall, axis=1), recall])

        replicates = bootstrap(stats, n, n_boot=context.n_boot, seed=context.seed)
        low, high = percentile_interval(replicates)
        recall = per_class_recall(cm)
        names = context.task.class_names
        per_class = [
            {"class": names[c], "recall": _num(recall[c]), "low": _num(low[4 + c]), "high": _num(high[4 + c]), "support": int(cm[c].sum())}
            for c in range(k)
        ]
        worst = int(np.nanargmin(recall))
        return [
            self.evidence(candidate, "accuracy", accuracy(cm), (low[0], high[0]),
                          details={"class_names": list(names), "confusion_matrix": cm.tolist(), "n": n}, figures=("confusion_matrix",)),
            self.evidence(candidate, "macro_f1", macro_f1(cm), (low[1], high[1])),
            self.evidence(candidate, "balanced_accuracy", np.nanmean(recall), (low[2], high[2])),
            self.evidence(candidate, "worst_class_recall", recall[worst], (low[3], high[3]),
                          details={"worst_class": names[worst], "per_class": per_class}, figures=("per_class_recall",)),
        ]


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
