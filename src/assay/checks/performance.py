"""The ``performance`` check: accuracy, macro-F1, per-class recall, with intervals.

Every metric is a pure function of a confusion matrix, written to work on a
stack of them ``(..., K, K)`` so one vectorised pass gives the point value
and all bootstrap replicates. Single proportions (accuracy, each class's
recall, and so the worst class's) get Clopper-Pearson exact intervals;
balanced accuracy, the mean recall, gets Price & Bonett's (2004) interval
for a mean of proportions; macro-F1 gets the bias-corrected bootstrap.
"""

from __future__ import annotations

import numpy as np

from collections.abc import Mapping

from .base import Check, CheckContext, Evidence, register_check
from .metrics import REPORT, TERMINAL, Metric, declare
from ..stats import bootstrap, bootstrap_interval, confusion_matrices, mean_of_proportions_interval, proportion_interval, unseen_rate


def accuracy(cm: np.ndarray) -> np.ndarray:
    """Fraction correct: trace / total."""
    return np.trace(cm, axis1=-2, axis2=-1) / cm.sum(axis=(-2, -1))


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class ``(..., K)``; NaN for a class with no examples."""
    support = cm.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diagonal(cm, axis1=-2, axis2=-1) / support


def perfect_macro_f1_low(support: np.ndarray, n: int, level: float = 0.95) -> float:
    """Lower bound of macro-F1 for a classifier that made no error on ``n`` examples.

    Every bootstrap resample of a perfect record is perfect, so the bootstrap
    says ``[1, 1]``. What the data do bound is the error rate: at most
    ``u`` (Clopper-Pearson's upper bound for 0 of n, about 3.7 / n), so at
    most ``e = u n`` errors on a sample this size. Each error is one false
    negative and one false positive, and ``1 - F1_k = (FP_k + FN_k) / (2 TP_k
    + FP_k + FN_k) <= (FP_k + FN_k) / n_k``, so ``1 - macro-F1 <= 2 e / (K
    n_min)``: the worst case puts every error in the smallest class.
    """
    present = support[support > 0]
    errors = unseen_rate(n, level) * n
    return float(max(0.0, 1.0 - 2 * errors / (len(present) * present.min())))


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
    metrics = declare(
        Metric("accuracy", True, "fraction of examples classified right", scale="proportion", summary=(REPORT, TERMINAL)),
        Metric("macro_f1", True, "unweighted mean F1 over the classes", scale="proportion", summary=(REPORT, TERMINAL)),
        Metric("balanced_accuracy", True, "mean recall over the classes", scale="proportion"),
        Metric("worst_class_recall", True, "recall of the class recalled least", scale="proportion", summary=(TERMINAL,)),
    )

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        e = records.get("worst_class_recall")
        return f"class {e.details.get('worst_class')}: recall {e.interval_text()}" if e else ""

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        p = context.predict(candidate)
        k = context.task.num_classes
        y, yhat = p.labels, p.predicted
        n = len(y)
        cm = confusion_matrices(y, yhat, k, np.arange(n)[None])[0]  # (K, K)

        def stats(index: np.ndarray) -> np.ndarray:
            return macro_f1(confusion_matrices(y, yhat, k, index))  # (b, K, K) -> (b,)

        recall = per_class_recall(cm)
        support = cm.sum(axis=1)
        f1_low, f1_high = bootstrap_interval(bootstrap(stats, n, n_boot=context.n_boot, seed=context.seed), macro_f1(cm))
        f1_details = {"interval": "bias-corrected bootstrap"}
        if np.trace(cm) == n and n:
            f1_low = perfect_macro_f1_low(support, n)
            f1_details = {"interval": "no errors on this split, so every resample is perfect: the lower bound is the worst macro-F1 that "
                                      "the most errors still consistent with none seen (Clopper-Pearson, 97.5%) could give"}
        balanced, b_low, b_high = mean_of_proportions_interval(np.diagonal(cm), support)
        # Recall of a class is a proportion of its support: an exact interval, so 27 of 27 is [0.872, 1], not [1, 1].
        r_low, r_high = proportion_interval(np.diagonal(cm), support)
        names = context.task.class_names
        per_class = [
            {"class": names[c], "recall": _num(recall[c]), "low": _num(r_low[c]) if support[c] else None,
             "high": _num(r_high[c]) if support[c] else None, "support": int(support[c])}
            for c in range(k)
        ]
        worst = int(np.nanargmin(recall))
        correct = int(np.trace(cm))
        return [
            self.evidence(candidate, "accuracy", accuracy(cm), proportion_interval(correct, n),
                          details={"class_names": list(names), "confusion_matrix": cm.tolist(), "n": n, "interval": "Clopper-Pearson exact"},
                          figures=("confusion_matrix",)),
            self.evidence(candidate, "macro_f1", macro_f1(cm), (f1_low, f1_high), details=f1_details),
            self.evidence(candidate, "balanced_accuracy", balanced, (b_low, b_high), details={"interval": "Price & Bonett (2004), mean of the class recalls"}),
            # The interval is the worst class's own recall interval (Clopper-Pearson): which class is worst is read
            # from the data, and a bootstrap of the minimum over classes is biased low (seen: 0.923 [0.777, 0.922]).
            self.evidence(candidate, "worst_class_recall", recall[worst], (r_low[worst], r_high[worst]),
                          details={"worst_class": names[worst], "per_class": per_class, "interval": "Clopper-Pearson exact, of the worst class's recall"},
                          figures=("per_class_recall",)),
        ]


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
