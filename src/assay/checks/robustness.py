"""The ``robustness`` check: accuracy under common corruptions, 5 severities each.

Corruption error and mean corruption error (mCE) follow Hendrycks &
Dietterich 2019, section 3: for corruption c, CE_c = sum_s E_{s,c} /
sum_s E^ref_{s,c}, with E the top-1 error at severity s and ``ref`` a
reference model; mCE is the mean of CE_c over corruptions. Relative mCE
measures the degradation beyond clean error: sum_s (E_{s,c} - E_clean) /
sum_s (E^ref_{s,c} - E^ref_clean), averaged over c.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..data.corruptions import CORRUPTIONS, SEVERITIES
from .base import Check, CheckContext, Evidence, register_check
from .stats import bootstrap, percentile_interval, resample_counts


def corruption_errors(errors: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """CE_c for each corruption: summed errors over severities, relative to the reference."""
    return {c: float(np.sum(errors[c]) / max(np.sum(reference[c]), 1e-12)) for c in errors}


def mean_corruption_error(errors: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """mCE: the mean of CE_c (Hendrycks & Dietterich 2019)."""
    return float(np.mean(list(corruption_errors(errors, reference).values())))


def relative_mean_corruption_error(
    errors: Mapping[str, np.ndarray], clean: float, reference: Mapping[str, np.ndarray], reference_clean: float
) -> float:
    """Relative mCE: degradation from clean error, relative to the reference's."""
    ratios = [
        np.sum(np.asarray(errors[c]) - clean) / max(np.sum(np.asarray(reference[c]) - reference_clean), 1e-12) for c in errors
    ]
    return float(np.mean(ratios))


@register_check
class Robustness(Check):
    """How accuracy degrades under the corruptions of the task's modality."""

    name = "robustness"
    metrics = {"corruption_accuracy": True, "worst_corruption_accuracy": True, "mce": False, "relative_mce": False}
    views = ("clean", "corrupt:*")

    def __init__(self, *, reference: str | None = None, severities: tuple[int, ...] | list[int] = SEVERITIES) -> None:
        bad = [s for s in severities if s not in SEVERITIES]
        if bad or not severities:
            raise ValueError(f"severities must be a non-empty subset of 1-5, got {list(severities)}")
        self.reference = reference
        self.severities = tuple(severities)

    def _correct(self, candidate, context: CheckContext) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Clean correctness (N,) and, per corruption, correctness (S, N)."""
        clean = context.predict(candidate)
        per = {}
        for kind in CORRUPTIONS.get(context.task.modality, {}):
            rows = [context.predict(candidate, view=f"corrupt:{kind}@{s}") for s in self.severities]
            per[kind] = np.stack([p.predicted == p.labels for p in rows])
        return clean.predicted == clean.labels, per

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        clean, per = self._correct(candidate, context)
        if not per:
            return []
        kinds = list(per)
        stacked = np.stack([per[k] for k in kinds])  # (C, S, N)
        reference = context.candidates.get(self.reference) if self.reference else context.reference
        ref_name = reference.name if reference is not None else candidate.name
        ref_clean, ref_per = (clean, per) if reference is None or reference is candidate else self._correct(reference, context)
        ref_stacked = np.stack([ref_per[k] for k in kinds])

        n = len(clean)
        as_float = stacked.astype(np.float64), ref_stacked.astype(np.float64)

        def stats(index: np.ndarray) -> np.ndarray:
            counts = resample_counts(index, n).T / n  # (N, b)
            acc = as_float[0] @ counts  # (C, S, b)
            err, ref_err = 1 - acc, 1 - as_float[1] @ counts
            ce = err.sum(1) / np.maximum(ref_err.sum(1), 1e-12)  # (C, b)
            clean_err, ref_clean_err = 1 - clean @ counts, 1 - ref_clean @ counts
            rel = (err - clean_err).sum(1) / np.maximum((ref_err - ref_clean_err).sum(1), 1e-12)
            return np.column_stack([acc.mean((0, 1)), acc.mean(1).min(0), ce.mean(0), rel.mean(0)])

        low, high = percentile_interval(bootstrap(stats, len(clean), n_boot=context.n_boot, seed=context.seed))
        accuracy = stacked.mean(-1)  # (C, S)
        errors = {k: 1 - accuracy[i] for i, k in enumerate(kinds)}
        ref_errors = {k: 1 - ref_stacked[i].mean(-1) for i, k in enumerate(kinds)}
        by_kind = accuracy.mean(1)
        worst = kinds[int(np.argmin(by_kind))]
        details = {
            "severities": list(self.severities),
            "clean_accuracy": float(clean.mean()),
            "accuracy": {k: accuracy[i].round(6).tolist() for i, k in enumerate(kinds)},
            "reference": ref_name,
            "corruption_error": corruption_errors(errors, ref_errors),
        }
        return [
            self.evidence(candidate, "corruption_accuracy", accuracy.mean(), (low[0], high[0]), view="corrupt:*",
                          details=details, figures=("accuracy_vs_severity",)),
            self.evidence(candidate, "worst_corruption_accuracy", by_kind.min(), (low[1], high[1]), view="corrupt:*",
                          details={"worst_corruption": worst, "by_corruption": dict(zip(kinds, by_kind.round(6).tolist()))}),
            self.evidence(candidate, "mce", mean_corruption_error(errors, ref_errors), (low[2], high[2]), view="corrupt:*",
                          details={"reference": ref_name}),
            self.evidence(candidate, "relative_mce", relative_mean_corruption_error(errors, 1 - clean.mean(), ref_errors, 1 - ref_clean.mean()),
                          (low[3], high[3]), view="corrupt:*", details={"reference": ref_name}),
        ]
