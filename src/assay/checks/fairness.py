"""The ``fairness`` check: whom does the candidate fail?

Per-group accuracy, true-positive rate, false-positive rate and selection
rate for one group attribute of the task, with the disparity measures as
Fairlearn defines them (Bird et al. 2020): demographic-parity difference
(largest minus smallest selection rate) and ratio (smallest over largest),
equalized-odds difference (the larger of the TPR and FPR differences), and
worst-group accuracy. Rates are for the ``positive`` class against the rest,
so multi-class tasks work too. A task without a group attribute is skipped
with the reason recorded.

Each group's rate is a proportion (of the group, its positives or its
negatives) and gets a Clopper-Pearson exact interval, so a false-positive rate of 4
out of 4 negatives reads 1.0 [0.51, 1.0], not [1.0, 1.0]; worst-group
accuracy is that group's own interval. The disparities, differences and
ratios of rates, get the bias-corrected bootstrap.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare
from ..stats import bootstrap, bootstrap_interval, proportion_interval

RATES = ("accuracy", "tpr", "fpr", "selection_rate")


def group_rates(y: np.ndarray, yhat: np.ndarray, group_codes: np.ndarray, n_groups: int, positive: int, index: np.ndarray) -> np.ndarray:
    """Per-group rates for each resample row of ``index`` ``(b, n)`` -> ``(b, G, 4)``.

    Order of the last axis: accuracy, TPR, FPR, selection rate. NaN where a
    group (or its positives/negatives) is absent from a resample.
    """
    b = index.shape[0]
    g = group_codes[index] + (np.arange(b) * n_groups)[:, None]  # (b, n) flat group ids
    t, p = (y[index] == positive), (yhat[index] == positive)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(g[mask], minlength=b * n_groups).reshape(b, n_groups).astype(np.float64)

    size, pos, neg = count(np.ones_like(t)), count(t), count(~t)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack(
            [count(y[index] == yhat[index]) / size, count(t & p) / pos, count(~t & p) / neg, count(p) / size], axis=-1
        )


def group_counts(y: np.ndarray, yhat: np.ndarray, group_codes: np.ndarray, n_groups: int, positive: int) -> tuple[np.ndarray, np.ndarray]:
    """Successes and totals behind each rate of ``group_rates``: two ``(G, 4)`` arrays.

    Accuracy counts correct of the group, TPR predicted-positive of its
    positives, FPR predicted-positive of its negatives, selection rate
    predicted-positive of the group.
    """
    t, p = y == positive, yhat == positive

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(group_codes[mask], minlength=n_groups)

    size = count(np.ones_like(t))
    return np.stack([count(y == yhat), count(t & p), count(~t & p), count(p)], -1), np.stack([size, count(t), count(~t), size], -1)


def disparities(rates: np.ndarray) -> np.ndarray:
    """From rates ``(..., G, 4)``: worst-group accuracy, DP difference, DP ratio, EO difference."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample may miss a group
        acc, tpr, fpr, sel = (rates[..., i] for i in range(4))
        dp_diff = np.nanmax(sel, -1) - np.nanmin(sel, -1)
        dp_ratio = np.where(np.nanmax(sel, -1) > 0, np.nanmin(sel, -1) / np.nanmax(sel, -1), 0.0)
        eo_diff = np.maximum(np.nanmax(tpr, -1) - np.nanmin(tpr, -1), np.nanmax(fpr, -1) - np.nanmin(fpr, -1))
        return np.stack([np.nanmin(acc, -1), dp_diff, dp_ratio, eo_diff], axis=-1)


@register_check
class Fairness(Check):
    """Per-group performance and disparity for a group attribute."""

    name = "fairness"
    metrics = declare(
        Metric("worst_group_accuracy", True, "accuracy of the group the candidate serves worst", scale="proportion"),
        Metric("demographic_parity_difference", False, "largest minus smallest rate of predicting the positive class, over groups",
               scale="proportion"),
        Metric("demographic_parity_ratio", True, "smallest over largest rate of predicting the positive class, over groups",
               scale="proportion"),
        Metric("equalized_odds_difference", False, "the larger of the groups' spreads in true- and false-positive rate",
               scale="proportion"),
    )
    covers = "differences in performance between groups of people or sources"

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        e = records.get("worst_group_accuracy")
        if not e:
            return ""
        groups = e.details.get("per_group", [])
        worst = min(groups, key=lambda g: g["accuracy"] if g["accuracy"] is not None else 2, default={})
        return f"{e.details.get('attribute')}={worst.get('group')}: accuracy {e.interval_text()}"

    def __init__(self, *, group: str | None = None, positive: str | None = None, min_group_size: int = 10) -> None:
        self.group, self.positive, self.min_group_size = group, positive, min_group_size

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        task = context.task
        groups = context.data.groups
        if not groups:
            return [self.skipped(candidate, f"the task has no group attribute; {task.groups_hint()} to measure fairness")]
        attribute = self.group or next(iter(groups))
        if attribute not in groups:
            return [self.skipped(candidate, f"group attribute '{attribute}' is not in the task (it has {', '.join(groups)})")]
        positive = task.class_names.index(self.positive) if self.positive in task.class_names else min(1, task.num_classes - 1)
        p = context.predict(candidate)
        names, codes = np.unique(np.asarray(groups[attribute]).astype(str), return_inverse=True)
        sizes = np.bincount(codes, minlength=len(names))
        kept = sizes >= self.min_group_size  # tiny groups give noise, not evidence
        if kept.sum() < 2:
            return [self.skipped(candidate, f"fewer than two groups of '{attribute}' have {self.min_group_size}+ test examples")]
        mask = kept[codes]
        remap = np.cumsum(kept) - 1
        y, yhat, g = p.labels[mask], p.predicted[mask], remap[codes[mask]]
        names, G = names[kept], int(kept.sum())

        rates = group_rates(y, yhat, g, G, positive, np.arange(len(y))[None])[0]  # (G, 4)
        values = disparities(rates)
        replicates = bootstrap(lambda idx: disparities(group_rates(y, yhat, g, G, positive, idx))[:, 1:], len(y), n_boot=context.n_boot, seed=context.seed)
        low, high = bootstrap_interval(replicates, values[1:])
        successes, totals = group_counts(y, yhat, g, G, positive)
        r_low, r_high = proportion_interval(successes, totals)  # (G, 4) each
        per_group = [
            {"group": str(names[i]), "n": int(np.sum(g == i)),
             **{r: _num(rates[i, j]) for j, r in enumerate(RATES)},
             **{f"{r}_low": _num(r_low[i, j]) if totals[i, j] else None for j, r in enumerate(RATES)},
             **{f"{r}_high": _num(r_high[i, j]) if totals[i, j] else None for j, r in enumerate(RATES)},
             **{f"{r}_of": int(totals[i, j]) for j, r in enumerate(RATES)}}
            for i in range(G)
        ]
        worst = int(np.nanargmin(rates[:, 0]))
        details = {"attribute": attribute, "positive_class": task.class_names[positive], "per_group": per_group,
                   "dropped_groups": int((~kept).sum()), "worst_group": str(names[worst]),
                   "interval": "per-group rates and worst-group accuracy: Clopper-Pearson exact; disparities: bias-corrected bootstrap"}
        return [
            # The worst group's own accuracy interval (Clopper-Pearson): a bootstrap of the minimum over groups is biased low.
            self.evidence(candidate, "worst_group_accuracy", values[0], (r_low[worst, 0], r_high[worst, 0]), view=f"group:{attribute}",
                          details=details, figures=("group_rates",)),
            *(self.evidence(candidate, m, values[i], (low[i - 1], high[i - 1]), view=f"group:{attribute}", details={"attribute": attribute})
              for i, m in enumerate(("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"), start=1)),
        ]


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
