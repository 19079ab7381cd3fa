"""The ``comparison`` check: is a candidate really worse than its parent?

A derived candidate (quantized, pruned, distilled…) is compared with its
parent, any other with the study's reference (its first candidate), on the
same test examples. Differences get paired bootstrap intervals (resampling
examples, both models together), and accuracy also gets McNemar's exact test
(McNemar 1947; the exact binomial form of Edwards 1948), so the report says
"worse" only when the difference is significant.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from .base import Check, CheckContext, Evidence, register_check
from .fairness import disparities, group_rates
from .performance import macro_f1
from .stats import bootstrap, confusion_matrices, percentile_interval


def mcnemar_exact(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> tuple[int, int, float]:
    """Discordant counts (b: only the reference right, c: only the candidate right) and the two-sided exact p-value."""
    b = int(np.sum(reference_correct & ~candidate_correct))
    c = int(np.sum(~reference_correct & candidate_correct))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return b, c, p


def verdict(low: float, high: float, lower_is_worse_for_candidate: bool = True) -> str:
    """'worse', 'better' or 'no significant difference' from a 95% interval of a drop."""
    if low > 0:
        return "worse" if lower_is_worse_for_candidate else "better"
    if high < 0:
        return "better" if lower_is_worse_for_candidate else "worse"
    return "no significant difference"


@register_check
class Comparison(Check):
    """Paired differences against the parent (or the reference candidate)."""

    name = "comparison"
    metrics = {"accuracy_drop": False, "macro_f1_drop": False, "worst_group_accuracy_drop": False}

    def __init__(self, *, alpha: float = 0.05) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"'alpha' must be in (0, 1), got {alpha}")
        self.alpha = alpha

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        parent_name = candidate.provenance.parent
        base = context.candidates.get(parent_name) if parent_name else context.reference
        if base is None or base is candidate or base.name == candidate.name:
            # The reference loses nothing against itself; relative gates then treat it like any variant.
            same = {"against": candidate.name, "relation": "self", "verdict": "reference"}
            return [self.evidence(candidate, m, 0.0, (0.0, 0.0), details=same) for m in ("accuracy_drop", "macro_f1_drop")]
        k = context.task.num_classes
        ours, theirs = context.predict(candidate), context.predict(base)
        y = ours.labels
        a, b = ours.predicted, theirs.predicted
        groups = context.task.test.groups
        attribute = next(iter(groups), None)
        codes = np.unique(np.asarray(groups[attribute]).astype(str), return_inverse=True)[1] if attribute else None
        n_groups = int(codes.max()) + 1 if attribute else 0

        def stats(index: np.ndarray) -> np.ndarray:
            cols = []
            for pred in (b, a):  # reference first: a drop is reference minus candidate
                cms = confusion_matrices(y, pred, k, index)
                acc = np.trace(cms, axis1=1, axis2=2) / index.shape[1]
                worst = disparities(group_rates(y, pred, codes, n_groups, 1, index))[:, 0] if attribute else np.zeros(len(index))
                cols.append(np.column_stack([acc, macro_f1(cms), worst]))
            return cols[0] - cols[1]

        full = stats(np.arange(len(y))[None])[0]
        low, high = percentile_interval(bootstrap(stats, len(y), n_boot=context.n_boot, seed=context.seed), level=1 - self.alpha)
        only_base, only_ours, p = mcnemar_exact(b == y, a == y)
        forgotten = np.flatnonzero((b == y) & (a != y))
        acc_details = {
            "against": base.name,
            "relation": "parent" if parent_name else "reference",
            "mcnemar_p": p,
            "only_reference_right": only_base,
            "only_candidate_right": only_ours,
            "verdict": ("worse" if full[0] > 0 else "better") if p < self.alpha else "no significant difference",
            "forgotten_examples": forgotten[:50].tolist(),
            "forgotten_count": int(len(forgotten)),
        }
        out = [
            self.evidence(candidate, "accuracy_drop", full[0], (low[0], high[0]), details=acc_details),
            self.evidence(candidate, "macro_f1_drop", full[1], (low[1], high[1]), details={"against": base.name, "verdict": verdict(low[1], high[1])}),
        ]
        if attribute:
            out.append(self.evidence(candidate, "worst_group_accuracy_drop", full[2], (low[2], high[2]), view=f"group:{attribute}",
                                     details={"against": base.name, "attribute": attribute, "verdict": verdict(low[2], high[2])}))
        return out
