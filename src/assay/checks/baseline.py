"""The ``baseline`` check: does the candidate beat always answering the majority class?

Every study runs it (``ALWAYS_RUN``). The trivial baseline predicts the most
frequent class of the training labels for every input. On a loan table where
96.6% of applicants are approved, a model scoring 0.868 loses to
"always approve" (0.875) although it passes ``accuracy >= 0.85``; this check
makes that impossible to miss and gives the ``beats_baseline`` gate.

The gain is paired (both rules judged on the same examples), so its interval
is Newcombe's score interval for a difference of paired proportions
(Newcombe 1998, Statistics in Medicine 17:2635, method 10), built from the
Wilson intervals of the two accuracies; it always contains its point.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Check, CheckContext, Evidence, register_check
from .stats import wilson_interval


def majority_class(labels: np.ndarray, num_classes: int) -> int:
    """The most frequent class (the lowest index on a tie)."""
    return int(np.argmax(np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)))


def paired_difference_interval(first: np.ndarray, second: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of two paired proportions ``mean(first) - mean(second)`` with Newcombe's interval.

    Args:
        first, second: ``(N,)`` booleans on the same examples (e.g. correct or not).

    Returns:
        ``(difference, low, high)``.
    """
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    n = len(first)
    if n == 0:
        return math.nan, -1.0, 1.0
    a = int(np.sum(first & second))
    b = int(np.sum(first & ~second))
    c = int(np.sum(~first & second))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, level)
    l2, u2 = wilson_interval(a + c, n, level)
    denominator = math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    phi = (a * d - b * c) / denominator if denominator > 0 else 0.0  # correlation of the pair; 0 when a margin is empty
    below = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    above = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    difference = p1 - p2
    return difference, max(difference - below, -1.0), min(difference + above, 1.0)


@register_check
class Baseline(Check):
    """Accuracy against always predicting the training set's majority class."""

    name = "baseline"
    metrics = {"baseline_accuracy": None, "baseline_balanced_accuracy": None, "accuracy_gain_over_baseline": True, "beats_baseline": True}

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        task = context.task
        p = context.predict(candidate)
        majority = majority_class(task.train.y, task.num_classes)
        y = p.labels
        ours, theirs = p.predicted == y, y == majority
        if len(y) == 0:
            return [self.skipped(candidate, f"the {context.split} split is empty")]
        gain, low, high = paired_difference_interval(ours, theirs)
        name = task.class_names[majority]
        present = len(np.unique(y))
        details = {"majority_class": name, "rule": f"always '{name}' (the most frequent class in train)", "n": len(y)}
        return [
            self.evidence(candidate, "baseline_accuracy", theirs.mean(), wilson_interval(int(theirs.sum()), len(y)), details=details),
            # A constant rule recalls its one class fully and no other: balanced accuracy 1 / (classes present).
            self.evidence(candidate, "baseline_balanced_accuracy", (1.0 if majority in y else 0.0) / present, details=details),
            self.evidence(candidate, "accuracy_gain_over_baseline", gain, (low, high), details={**details, "accuracy": float(ours.mean())}),
            self.evidence(candidate, "beats_baseline", float(low > 0), details={**details, "gain": gain, "gain_interval": [low, high],
                          "meaning": "1 when the paired 95% interval of the accuracy gain lies above 0"}),
        ]
