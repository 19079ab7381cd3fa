"""The ``comparison`` check: is a candidate really worse than its parent?

A derived candidate (quantized, pruned, distilled…) is compared with its
parent, any other with the study's reference (its first candidate), on the
same test examples. Differences get paired bootstrap intervals (resampling
examples, both models together; bias-corrected percentiles); accuracy and
each class's recall and group's accuracy, paired proportions, get Newcombe's
score interval instead. Accuracy also gets McNemar's exact test (McNemar 1947; the exact binomial form of
Edwards 1948), so the report says "worse" only when the difference is
significant. The rise in ECE, a difference of two biased statistics, gets
the bound of ``calibration.ece_interval`` for each model (Bonferroni: half
the error rate each), which holds at any bias.

The ECE rise uses the calibration check's bins and the worst-group drop the
fairness check's group attribute, so the pairs match the figures they are
shown beside; ``n_bins`` and ``group`` set them when those checks do not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from scipy.stats import binomtest

from .base import Check, CheckContext, Evidence, register_check
from .calibration import brier_loss, ece_batched, ece_deviation_draws, nll_loss
from .fairness import disparities, group_rates
from .metrics import Metric, declare
from .performance import macro_f1
from ..stats import bootstrap, bootstrap_interval, confusion_matrices, paired_difference_interval, unseen_rate

ECE_BINS = 15  # the calibration check's default, used when neither this check nor the study's calibration sets n_bins


def mcnemar_exact(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> tuple[int, int, float]:
    """Discordant counts (b: only the reference right, c: only the candidate right) and the two-sided exact p-value."""
    b = int(np.sum(reference_correct & ~candidate_correct))
    c = int(np.sum(~reference_correct & candidate_correct))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return b, c, p


def forgotten_preview(task, index: np.ndarray, reference_pred: np.ndarray, candidate_pred: np.ndarray, split: str = "test") -> list[dict]:
    """A few forgotten test examples, small enough for the evidence record: a thumbnail, a signal or the text."""
    names = task.class_names
    test = task.split(split)
    out = []
    for i in index.tolist():
        row = {"index": i, "label": str(names[test.y[i]]), "reference": str(names[reference_pred[i]]), "candidate": str(names[candidate_pred[i]])}
        if task.modality == "text" and "text" in test.meta:
            row["text"] = str(test.meta["text"][i])[:280]
        elif task.modality in ("image", "signal"):
            x = np.asarray(test.x[i : i + 1], dtype=np.float32)[0]
            x = x.mean(axis=0)  # channels averaged: a thumbnail, not the exact input
            step = max(1, -(-max(x.shape) // (32 if x.ndim == 2 else 256)))
            row[task.modality] = np.round(x[::step, ::step] if x.ndim == 2 else x[::step], 3).tolist()
        out.append(row)
    return out


def _mean_correct(context: CheckContext, candidate, views: list[str]) -> np.ndarray:
    """Per test example, the fraction of corrupted views it is classified right in ``(N,)``.

    Averaging per example first is exact: every view holds the same examples,
    so the mean over views of each view's accuracy is the mean of this.
    """
    rows = [context.predict(candidate, view=v) for v in views]
    return np.mean([r.predicted == r.labels for r in rows], axis=0)


def verdict(low: float, high: float, lower_is_worse_for_candidate: bool = True) -> str:
    """'worse', 'better' or 'no significant difference' from a 95% interval of a drop."""
    if low > 0:
        return "worse" if lower_is_worse_for_candidate else "better"
    if high < 0:
        return "better" if lower_is_worse_for_candidate else "worse"
    return "no significant difference"


@register_check
class Comparison(Check):
    """Paired differences against the parent (or the reference candidate), overall, per class and per group.

    A class or group is flagged for disproportionate harm when its drop is
    more than ``harm_multiple`` times the overall accuracy drop (and its
    interval excludes zero).
    """

    name = "comparison"
    # Each is the paired change of another check's metric against the parent (or reference): the report's
    # compression section shows it beside that metric's own change.
    metrics = declare(
        Metric("accuracy_drop", False, "accuracy lost against the parent, paired over the same examples", scale="difference",
               paired="accuracy", sign=-1),
        Metric("macro_f1_drop", False, "macro-F1 lost against the parent", scale="difference", paired="macro_f1", sign=-1),
        Metric("worst_group_accuracy_drop", False, "worst-group accuracy lost against the parent", scale="difference",
               paired="worst_group_accuracy", sign=-1),
        Metric("ece_rise", False, "ECE gained against the parent", scale="difference", paired="ece", sign=1),
        Metric("brier_loss_rise", False, "Brier score gained against the parent", scale="real", paired="brier_loss", sign=1),
        Metric("nll_loss_rise", False, "negative log-likelihood gained against the parent", scale="real", paired="nll_loss", sign=1),
        Metric("corruption_accuracy_drop", False, "accuracy under corruption lost against the parent", scale="difference",
               paired="corruption_accuracy", sign=-1),
    )

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        e = records.get("accuracy_drop")
        return f"vs {e.details.get('against')}: {e.details.get('verdict')} (drop {e.interval_text()})" if e else ""

    def __init__(self, *, alpha: float = 0.05, harm_multiple: float = 2.0, n_bins: int | None = None, group: str | None = None) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"'alpha' must be in (0, 1), got {alpha}")
        if harm_multiple < 1:
            raise ValueError(f"'harm_multiple' must be at least 1, got {harm_multiple}")
        if n_bins is not None and n_bins < 1:
            raise ValueError(f"'n_bins' must be at least 1, got {n_bins}")
        self.alpha, self.harm_multiple, self.n_bins, self.group = alpha, harm_multiple, n_bins, group

    def ece_bins(self, context: CheckContext) -> int:
        """ECE bins: this check's ``n_bins``, else the study's calibration check's, else its default (15)."""
        calibration = context.checks.get("calibration")
        return self.n_bins or getattr(calibration, "n_bins", None) or ECE_BINS

    def group_attribute(self, context: CheckContext) -> str | None:
        """The group attribute: this check's ``group``, else the study's fairness check's, else the task's first (``None``: none)."""
        groups = context.data.groups
        fairness = context.checks.get("fairness")
        return self.group or getattr(fairness, "group", None) or next(iter(groups), None)

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        parent_name = candidate.provenance.parent
        base = context.candidates.get(parent_name) if parent_name else context.reference
        if base is None or base is candidate or base.name == candidate.name:
            # No drop is measured for the reference, so a relative gate (accuracy_drop <= 0.01) rules it out:
            # a study with relative gates chooses among the variants, and exits 1 when every one of them loses too much.
            return [self.skipped(candidate, "the reference others are compared with; relative gates apply to derived candidates only")]
        k = context.task.num_classes
        ours, theirs = context.predict(candidate), context.predict(base)
        y = ours.labels
        a, b = ours.predicted, theirs.predicted
        groups = context.data.groups
        attribute = self.group_attribute(context)
        missing = attribute is not None and attribute not in groups
        if missing:  # the other drops are still measured; the group's is recorded as skipped, with the reason
            reason = f"worst_group_accuracy_drop not measured: group attribute '{attribute}' is not in the task (it has {', '.join(groups) or 'none'})"
            attribute = None
        n_bins = self.ece_bins(context)
        group_names, codes = np.unique(np.asarray(groups[attribute]).astype(str), return_inverse=True) if attribute else ([], None)
        n_groups = len(group_names)

        calibration = [(pr.probs.max(axis=1), (pr.predicted == y).astype(np.float64), brier_loss(pr.probs, y), nll_loss(pr.probs, y))
                       for pr in (theirs, ours)]
        # Corrupted views only when another check (robustness) had them computed: this check never forces new passes.
        corrupted = [v for v in context.views if v.startswith("corrupt:")]
        under_corruption = [_mean_correct(context, c, corrupted) for c in (base, candidate)] if corrupted else [np.zeros(len(y))] * 2

        def stats(index: np.ndarray) -> np.ndarray:
            cols = []
            for pred, (confidence, correct, brier, nll), robust in zip((b, a), calibration, under_corruption):  # reference first: a drop is reference minus candidate
                cms = confusion_matrices(y, pred, k, index)
                acc = np.trace(cms, axis1=1, axis2=2) / index.shape[1]
                with np.errstate(invalid="ignore", divide="ignore"):
                    recall = np.diagonal(cms, axis1=1, axis2=2) / cms.sum(axis=2)  # (b, K); NaN where a class is absent
                rates = group_rates(y, pred, codes, n_groups, 1, index) if attribute else np.zeros((len(index), 0, 4))
                worst = disparities(rates)[:, 0] if attribute else np.zeros(len(index))
                ece = ece_batched(confidence, correct, n_bins, index)
                cols.append(np.column_stack([acc, macro_f1(cms), worst, recall, rates[..., 0], ece, brier[index].mean(1), nll[index].mean(1),
                                             robust[index].mean(1)]))
            return cols[0] - cols[1]

        full = stats(np.arange(len(y))[None])[0]
        low, high = bootstrap_interval(bootstrap(stats, len(y), n_boot=context.n_boot, seed=context.seed), full, level=1 - self.alpha)
        j = 3 + k + n_groups  # the ECE column: |rise - true rise| <= D_reference + D_candidate, each bounded at 1 - alpha / 2
        bound = sum(float(np.quantile(ece_deviation_draws(conf, corr, n_bins, n_boot=context.n_boot, seed=context.seed), 1 - self.alpha / 2))
                    for conf, corr, _, _ in calibration)
        low[j], high[j] = max(full[j] - bound, -1.0), min(full[j] + bound, 1.0)
        # Accuracy, each class's recall and each group's accuracy are paired proportions: Newcombe's score interval,
        # which unlike the bootstrap does not shrink to [0, 0] when the two models happen to agree on every example here.
        right_base, right_ours = b == y, a == y
        members = [np.ones(len(y), bool), *(y == c for c in range(k)), *((codes == g) for g in range(n_groups))]
        for col, member in zip((0, *range(3, 3 + k + n_groups)), members):
            if member.any():
                full[col], low[col], high[col] = paired_difference_interval(right_base[member], right_ours[member], level=1 - self.alpha)
        self._widen_unseen_disagreement(full, low, high, y, k, codes, n_groups, last=j + 3)
        only_base, only_ours, p = mcnemar_exact(right_base, right_ours)
        forgotten = np.flatnonzero((b == y) & (a != y))
        per_class = self._harm(context.task.class_names, full[3 : 3 + k], low[3 : 3 + k], high[3 : 3 + k], full[0])
        per_group = self._harm(list(group_names), full[3 + k :], low[3 + k :], high[3 + k :], full[0])
        acc_details = {
            "against": base.name,
            "relation": "parent" if parent_name else "reference",
            "mcnemar_p": p,
            "only_reference_right": only_base,
            "only_candidate_right": only_ours,
            "verdict": ("worse" if full[0] > 0 else "better") if p < self.alpha else "no significant difference",
            "forgotten_examples": forgotten[:50].tolist(),
            "forgotten_count": int(len(forgotten)),
            "forgotten_preview": forgotten_preview(context.task, forgotten[:8], b, a, context.split),
            "per_class": per_class,
            "harm_multiple": self.harm_multiple,
            "harmed_classes": [row["name"] for row in per_class if row["flagged"]],
        }
        out = [
            self.evidence(candidate, "accuracy_drop", full[0], (low[0], high[0]), details=acc_details, figures=("class_drops", "forgotten_examples")),
            self.evidence(candidate, "macro_f1_drop", full[1], (low[1], high[1]), details={"against": base.name, "verdict": verdict(low[1], high[1])}),
        ]
        for j, metric in enumerate(("ece_rise", "brier_loss_rise", "nll_loss_rise"), start=3 + k + n_groups):
            # a rise is candidate minus reference: the negated column, its interval mirrored
            out.append(self.evidence(candidate, metric, -full[j], (-high[j], -low[j]),
                                     details={"against": base.name, "verdict": verdict(-high[j], -low[j])}))
        if corrupted:
            j = 6 + k + n_groups
            out.append(self.evidence(candidate, "corruption_accuracy_drop", full[j], (low[j], high[j]), view="corrupt:*",
                                     details={"against": base.name, "views": len(corrupted), "verdict": verdict(low[j], high[j])}))
        if attribute:
            out.append(self.evidence(candidate, "worst_group_accuracy_drop", full[2], (low[2], high[2]), view=f"group:{attribute}",
                                     details={"against": base.name, "attribute": attribute, "verdict": verdict(low[2], high[2]),
                                              "per_group": per_group, "harmed_groups": [row["name"] for row in per_group if row["flagged"]]}))
        if missing:
            out.append(self.skipped(candidate, reason))
        return [replace(e, reference=base.name) for e in out]

    def _widen_unseen_disagreement(self, full, low, high, y, k: int, codes, n_groups: int, last: int) -> None:
        """Bounds for the bootstrapped drops (macro-F1, worst group, under corruption) when the two models never disagree here.

        Every resample of two models that agree on every example agrees too, so
        the bootstrap says ``[0, 0]``. What the data bound is the rate of
        disagreement: at most ``u``, Clopper-Pearson's upper bound for 0 of
        ``n`` (about 3.7 / n at 95%). An accuracy (of a group, or under
        corruption) then moves by at most ``u``, taken for the smallest group;
        macro-F1 over the K classes in the labels by at most ``3 u n / (K
        n_min)``: one changed prediction moves its true class's F1 =
        2TP / (TP + n_k + FP) by at most ``2 / n_k`` and the two predicted
        classes' by at most ``1 / (2 n_k)`` each. Applied only where the
        bootstrap interval has zero width.
        """
        level = 1 - self.alpha
        support = np.bincount(y, minlength=k)
        present = support[support > 0]
        u = unseen_rate(len(y), level)
        bounds = {1: 3 * u * len(y) / (len(present) * present.min()), last: u}
        if n_groups:
            smallest = int(np.bincount(codes, minlength=n_groups).min())
            bounds[2] = unseen_rate(smallest, level)
        for col, bound in bounds.items():
            if low[col] == high[col]:
                low[col], high[col] = max(full[col] - bound, -1.0), min(full[col] + bound, 1.0)

    def _harm(self, names, drops, lows, highs, overall: float) -> list[dict]:
        """Per-class (or per-group) drops, flagged where one loses more than ``harm_multiple`` times the overall drop.

        A flag also needs the drop's interval to exclude zero, so a single
        unlucky example in a small class does not raise it (Hooker et al.
        2019 call such disproportionately hit classes the cost of compression).
        """
        limit = self.harm_multiple * max(overall, 0.0)
        return [
            {"name": str(name), "drop": float(d), "low": float(lo), "high": float(hi),
             "flagged": bool(np.isfinite(d) and d > limit and lo > 0)}
            for name, d, lo, hi in zip(names, drops, lows, highs)
        ]
