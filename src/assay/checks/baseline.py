"""The ``baseline`` check: does the candidate beat always answering the majority class?

Every study runs it (``ALWAYS_RUN``). The trivial baseline predicts the most
frequent class of the training labels for every input. On a loan table where
96.6% of applicants are approved, a model scoring 0.868 loses to
"always approve" (0.875) although it passes ``accuracy >= 0.85``; this check
makes that impossible to miss and gives the ``beats_baseline`` gate.

The baseline's accuracy gets the exact (Clopper–Pearson) interval, like every
single proportion. The gain is paired (both rules judged on the same
examples), so its interval is Newcombe's score interval for a difference of
paired proportions (Newcombe 1998, method 10; ``stats.paired_difference_interval``),
which always contains its point.
"""

from __future__ import annotations

import numpy as np

from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare
from ..stats import paired_difference_interval, proportion_interval


def majority_class(labels: np.ndarray, num_classes: int) -> int:
    """The most frequent class (the lowest index on a tie)."""
    return int(np.argmax(np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)))


@register_check
class Baseline(Check):
    """Accuracy against always predicting the training set's majority class."""

    name = "baseline"
    # The baseline's own figures describe the data, the same for every candidate: no policy may rank on them.
    metrics = declare(
        Metric("baseline_accuracy", True, "accuracy of always answering the training set's majority class", scale="proportion",
               gateable=False),
        Metric("baseline_balanced_accuracy", True, "balanced accuracy of always answering the majority class", scale="proportion",
               gateable=False),
        Metric("accuracy_gain_over_baseline", True, "accuracy minus the trivial baseline's, paired over the same examples",
               scale="difference"),
        Metric("beats_baseline", True, "1 when the gain's 95% interval lies above 0", scale="flag"),
    )

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
            self.evidence(candidate, "baseline_accuracy", theirs.mean(), proportion_interval(int(theirs.sum()), len(y)), details=details),
            # A constant rule recalls its one class fully and no other: balanced accuracy 1 / (classes present).
            self.evidence(candidate, "baseline_balanced_accuracy", (1.0 if majority in y else 0.0) / present, details=details),
            self.evidence(candidate, "accuracy_gain_over_baseline", gain, (low, high), details={**details, "accuracy": float(ours.mean())}),
            self.evidence(candidate, "beats_baseline", float(low > 0), details={**details, "gain": gain, "gain_interval": [low, high],
                          "meaning": "1 when the paired 95% interval of the accuracy gain lies above 0"}),
        ]
