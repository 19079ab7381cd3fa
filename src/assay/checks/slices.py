"""The ``slices`` check: where are the errors concentrated?

Slices come from metadata columns (each category; numeric columns in
quartiles) and from clustering the test embeddings (k-means), so every
modality gets them. Each slice gets its size, error rate and a Clopper-Pearson exact 95%
interval (Clopper & Pearson 1934), and a one-sided exact binomial test of "error here
is higher than the error elsewhere", Holm-corrected for the number of slices
tried (Holm 1979), so a slice is flagged only when it would survive that many
looks. The worst slices are reported with example members.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import binomtest

from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare
from ..stats import holm, proportion_interval



def metadata_slices(meta: dict[str, np.ndarray], max_categories: int = 20) -> dict[str, np.ndarray]:
    """Boolean masks named ``column = value`` or ``column in [lo, hi)`` (quartiles)."""
    out = {}
    for column, values in meta.items():
        values = np.asarray(values)
        numeric = np.issubdtype(values.dtype, np.number) and len(np.unique(values)) > max_categories
        if numeric:
            edges = np.unique(np.quantile(values, [0, 0.25, 0.5, 0.75, 1]))
            for lo, hi in zip(edges[:-1], edges[1:]):
                last = hi == edges[-1]
                out[f"{column} in [{lo:.4g}, {hi:.4g}{']' if last else ')'}"] = (values >= lo) & ((values <= hi) if last else (values < hi))
        else:
            for value in np.unique(values.astype(str))[:max_categories]:
                out[f"{column} = {value}"] = values.astype(str) == value
    return out


def cluster_slices(embeddings: np.ndarray, n_clusters: int, seed: int) -> dict[str, np.ndarray]:
    from sklearn.cluster import KMeans

    f = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
    labels = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(f)
    return {f"embedding cluster {c}": labels == c for c in range(n_clusters)}


@register_check
class Slices(Check):
    """The data slices with the highest error, tested against the rest."""

    name = "slices"
    metrics = declare(
        Metric("worst_slice_error", False, "error rate of the slice (metadata value or embedding cluster) with the most errors",
               scale="proportion"),
        Metric("significant_slices", False, "slices whose error is significantly above the rest's (Holm-corrected)", scale="count"),
    )

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        e = records.get("worst_slice_error")
        if not e or not e.details.get("worst"):
            return ""
        top = e.details["worst"][0]
        return f"{top['slice']}: error {e.interval_text()}" + (" (significant)" if top.get("significant") else "")
    needs = ("logits", "embeddings")

    def __init__(self, *, min_size: int = 10, n_clusters: int = 8, top: int = 10, alpha: float = 0.05) -> None:
        if min_size < 1 or n_clusters < 2 or top < 1 or not 0 < alpha < 1:
            raise ValueError("min_size >= 1, n_clusters >= 2, top >= 1 and 0 < alpha < 1 are required")
        self.min_size, self.n_clusters, self.top, self.alpha = min_size, n_clusters, top, alpha

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        p = context.predict(candidate, embeddings=True)
        wrong = p.predicted != p.labels
        n = len(wrong)
        masks = metadata_slices(dict(context.data.meta))
        k = min(self.n_clusters, n // max(self.min_size, 1))
        if k >= 2 and p.embeddings is not None:
            masks |= cluster_slices(p.embeddings, k, context.seed)
        masks = {name: m for name, m in masks.items() if self.min_size <= m.sum() < n}
        if not masks:
            return [self.skipped(candidate, f"no slice has at least {self.min_size} test examples")]
        rows = []
        for name, mask in masks.items():
            size, errors = int(mask.sum()), int(wrong[mask].sum())
            rest = max(int(wrong[~mask].sum()), 0) / max(n - size, 1)
            pvalue = binomtest(errors, size, min(max(rest, 1e-12), 1 - 1e-12), alternative="greater").pvalue
            rows.append({"slice": name, "n": size, "error": errors / size, "interval": proportion_interval(errors, size),
                         "error_elsewhere": rest, "p": float(pvalue), "members": np.flatnonzero(mask & wrong)[:5].tolist()})
        adjusted = holm(np.array([r["p"] for r in rows]))
        for r, q in zip(rows, adjusted):
            r["p_holm"], r["significant"] = float(q), bool(q < self.alpha)
        rows.sort(key=lambda r: (-r["error"], r["p"]))
        worst = rows[0]
        details = {"overall_error": float(wrong.mean()), "slices_tried": len(rows), "alpha": self.alpha, "worst": rows[: self.top]}
        significant = sum(r["significant"] for r in rows)
        return [
            self.evidence(candidate, "worst_slice_error", worst["error"], worst["interval"], details=details, figures=("slices",)),
            self.evidence(candidate, "significant_slices", significant, details={"slices_tried": len(rows), "correction": "Holm"}),
        ]
