"""The ``ood`` check: does the candidate know what it does not know?

Scores (higher = more in-distribution):
  * ``msp``: maximum softmax probability (Hendrycks & Gimpel 2017);
  * ``max_logit``: the largest logit (Hendrycks et al. 2022);
  * ``energy``: logsumexp of the logits, i.e. minus the free energy (Liu et al. 2020);
  * ``mahalanobis``: minus the smallest Mahalanobis distance of the embedding to a
    class mean under a tied covariance fitted on train embeddings (Lee et al. 2018);
  * ``knn``: minus the distance to the k-th nearest normalised train embedding
    (Sun et al. 2022).
Metrics, in-distribution test examples against each OOD set: AUROC, AUPR
with OOD as the positive class, and FPR at 95% TPR (the share of OOD inputs
accepted when 95% of in-distribution inputs are). OOD sets: ``holdout``
(near: classes held out of training), ``noise`` and ``inverted`` (far), and
``user``: any data set the study names in ``[task] ood = {...}``.

Intervals are bias-corrected bootstrap intervals over a stratified
resampling (in-distribution and OOD examples resampled separately). An AUROC
below 0.5 means the score ranks OOD inputs as *more* in-distribution than
real ones; the record carries a warning saying so rather than let it read as
a weak detector.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare
from ..stats import bootstrap_interval, proportion_interval

SCORES = ("msp", "max_logit", "energy", "mahalanobis", "knn")
EMBEDDING_SCORES = ("mahalanobis", "knn")  # need the candidate's penultimate features
NEAR, FAR, USER = ("holdout",), ("noise", "inverted"), ("user",)


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> np.ndarray:
    """P(score of an ID example > score of an OOD example), ties counting half.

    Works on the last axis, so stacks of resamples ``(b, n)`` go in one call.
    Mann-Whitney U statistic divided by n_id * n_ood.
    """
    n1, n0 = id_scores.shape[-1], ood_scores.shape[-1]
    ranks = rankdata(np.concatenate([id_scores, ood_scores], axis=-1), axis=-1)
    return (ranks[..., :n1].sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def aupr_out(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Average precision with OOD as the positive class, ranked by minus the score.

    Step-wise average precision over distinct thresholds, as scikit-learn's
    ``average_precision_score``.
    """
    y = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    s = -np.concatenate([id_scores, ood_scores])
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each run of equal scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    precision, recall = tp / (tp + fp), tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> np.ndarray:
    """Share of OOD examples scored at or above the threshold that keeps ``tpr`` of ID examples."""
    threshold = np.quantile(id_scores, 1 - tpr, axis=-1, method="lower")
    return (ood_scores >= np.expand_dims(threshold, -1)).mean(-1)


def bootstrap_auroc_fpr(
    id_scores: np.ndarray, ood_sets: Mapping[str, np.ndarray], n_boot: int, rng: np.random.Generator, tpr: float = 0.95,
    chunk_elements: int = 2_000_000,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """AUROC and FPR@TPR of each OOD set for ``n_boot`` stratified resamples.

    Scores are ranked once; each resample is then a histogram over the ranks
    (one ``bincount``), so no resample is sorted. The in-distribution
    resample is shared by every OOD set, so averages over sets are paired.
    Equal to ``auroc`` and ``fpr_at_tpr`` on each resample; chunked so memory
    stays bounded as the splits grow.
    """
    names = list(ood_sets)
    values, codes = np.unique(np.concatenate([id_scores, *ood_sets.values()]), return_inverse=True)
    u, n1 = len(values), len(id_scores)
    bounds = np.cumsum([n1, *(len(ood_sets[m]) for m in names)])
    cid, cood = codes[:n1], dict(zip(names, np.split(codes[n1:], bounds[1:-1] - n1)))
    k = int(np.floor((1 - tpr) * (n1 - 1)))  # position of the 'lower' quantile, as np.quantile
    per_chunk = max(1, chunk_elements // max(u, *bounds))
    out: dict[str, tuple[list, list]] = {m: ([], []) for m in names}
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        offsets = (np.arange(b) * u)[:, None]
        h_id = np.bincount((cid[rng.integers(0, n1, (b, n1))] + offsets).ravel(), minlength=b * u).reshape(b, u)
        first = np.argmax(np.cumsum(h_id, axis=1) > k, axis=1)  # rank of the threshold
        for m in names:
            n0 = len(cood[m])
            h_ood = np.bincount((cood[m][rng.integers(0, n0, (b, n0))] + offsets).ravel(), minlength=b * u).reshape(b, u)
            below = np.cumsum(h_ood, axis=1) - h_ood  # OOD examples strictly below each distinct score
            out[m][0].append((h_id * (below + 0.5 * h_ood)).sum(1) / (n1 * n0))
            out[m][1].append((n0 - np.take_along_axis(below, first[:, None], 1)[:, 0]) / n0)
    return {m: (np.concatenate(a), np.concatenate(f)) for m, (a, f) in out.items()}


def logit_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    z = logits.astype(np.float64)
    return {"msp": np.exp(z.max(1) - logsumexp(z, axis=1)), "max_logit": z.max(1), "energy": logsumexp(z, axis=1)}


class EmbeddingScorer:
    """Mahalanobis (tied covariance) and k-NN scores fitted on train embeddings."""

    def __init__(self, train_embeddings: np.ndarray, train_labels: np.ndarray, k: int = 50) -> None:
        f = train_embeddings.astype(np.float64)
        classes = np.unique(train_labels)
        self.means = np.stack([f[train_labels == c].mean(0) for c in classes])  # (K, D)
        centred = f - self.means[np.searchsorted(classes, train_labels)]
        cov = centred.T @ centred / len(f)
        self.precision = np.linalg.pinv(cov + 1e-6 * np.eye(cov.shape[0]))
        self.bank = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
        self.k = min(k, len(f))

    def mahalanobis(self, e: np.ndarray) -> np.ndarray:
        # (e - m)' P (e - m) expanded into matrix products: no (N, K, D) tensor.
        e = e.astype(np.float64)
        ep = e @ self.precision  # (N, D)
        mp = self.means @ self.precision  # (K, D)
        d2 = (ep * e).sum(1)[:, None] - 2 * ep @ self.means.T + (mp * self.means).sum(1)[None]  # (N, K)
        return -d2.min(1)

    def knn(self, e: np.ndarray, chunk_elements: int = 4_000_000) -> np.ndarray:
        q = e.astype(np.float64)
        q = q / (np.linalg.norm(q, axis=1, keepdims=True) + 1e-12)
        out = []
        chunk = max(1, chunk_elements // len(self.bank))
        for i in range(0, len(q), chunk):  # bounded memory: (chunk, n_train) distances at a time
            dist = np.sqrt(np.maximum(2 - 2 * q[i : i + chunk] @ self.bank.T, 0))
            out.append(-np.partition(dist, self.k - 1, axis=1)[:, self.k - 1])
        return np.concatenate(out)


# The OOD sets' groups, each with its own pair of metrics.
_GROUPS = (("near", "held-out classes (near OOD)"), ("far", "synthetic junk (far OOD)"), ("user", "the user's OOD set"))


@register_check
class OOD(Check):
    """Separating in-distribution inputs from held-out classes and synthetic junk."""

    name = "ood"
    metrics = declare(
        *(Metric(f"{group}_ood_auroc", True, f"how well the OOD score separates test inputs from {what} (AUROC; 0.5 is chance)",
                 scale="proportion") for group, what in _GROUPS),
        *(Metric(f"{group}_ood_fpr95", False, f"fraction of {what} accepted when 95% of test inputs are", scale="proportion")
          for group, what in _GROUPS),
    )
    covers = "inputs from none of the known classes (the model always answers one of them)"
    needs = ("logits", "embeddings")
    views = ("clean", "ood:*")
    splits = ("train", "test")

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        found = [records[m] for m in ("near_ood_auroc", "far_ood_auroc") if m in records]
        if not found:
            return ""
        worst = min(found, key=lambda e: e.value)
        below = " — below chance" if worst.value < 0.5 else ""
        return f"{worst.metric.split('_')[0]}-OOD AUROC {worst.interval_text()} ({worst.details.get('score', '')}){below}"

    def __init__(self, *, score: str = "energy", k: int = 50, sets: list[str] | tuple[str, ...] = (*NEAR, *FAR, *USER)) -> None:
        if score not in SCORES:
            raise ValueError(f"unknown score '{score}'; available: {', '.join(SCORES)}")
        unknown = [s for s in sets if s not in (*NEAR, *FAR, *USER)]
        if unknown or k < 1:
            raise ValueError(f"sets must be among {', '.join((*NEAR, *FAR, *USER))} and k >= 1")
        self.score, self.k, self.sets = score, k, tuple(sets)

    def _scores(self, candidate, context: CheckContext, scorer: EmbeddingScorer | None, split: str, view: str) -> dict[str, np.ndarray]:
        p = context.predict(candidate, split=split, view=view, embeddings=scorer is not None)
        if scorer is None:
            return logit_scores(p.logits)
        return {**logit_scores(p.logits), "mahalanobis": scorer.mahalanobis(p.embeddings), "knn": scorer.knn(p.embeddings)}

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        task = context.task
        sets = [s for s in self.sets if (s != "holdout" or task.ood is not None) and (s != "user" or task.ood_user is not None)]
        missing = candidate.capabilities.lacks("features")
        if missing and self.score in EMBEDDING_SCORES:
            return [self.skipped(candidate, f"the '{self.score}' score reads penultimate features, and '{candidate.name}' has none: {missing}; "
                                            "use score = \"energy\" for this candidate")]
        scorer = None
        if not missing:
            train = context.predict(candidate, split="train", embeddings=True)
            scorer = EmbeddingScorer(train.embeddings, train.labels, self.k)
        scores = [s for s in SCORES if scorer is not None or s not in EMBEDDING_SCORES]
        ind = self._scores(candidate, context, scorer, context.split, "clean")
        table, outs = {}, {}
        for name in sets:
            out = outs[name] = self._scores(candidate, context, scorer, context.split, f"ood:{name}")
            table[name] = {s: {"auroc": float(auroc(ind[s], out[s])), "aupr": aupr_out(ind[s], out[s]), "fpr95": float(fpr_at_tpr(ind[s], out[s]))} for s in scores}
        # Stratified bootstrap: ID and OOD examples resampled separately.
        primary = bootstrap_auroc_fpr(ind[self.score], {m: outs[m][self.score] for m in sets}, context.n_boot, np.random.default_rng(context.seed)) if sets else {}
        evidence = []
        for group, kinds in (("near", NEAR), ("far", FAR), ("user", USER)):
            members = [s for s in sets if s in kinds]
            if not members:
                continue
            au = np.mean([primary[m][0] for m in members], axis=0)
            fp = np.mean([primary[m][1] for m in members], axis=0)
            value_au = np.mean([table[m][self.score]["auroc"] for m in members])
            value_fp = np.mean([table[m][self.score]["fpr95"] for m in members])
            (lo_au, lo_fp), (hi_au, hi_fp) = bootstrap_interval(np.column_stack([au, fp]), [value_au, value_fp])
            if lo_fp == hi_fp:
                # Every resample accepted (or rejected) every OOD input: the bootstrap says certain. FPR95 is a share of
                # the OOD inputs, so the exact interval of that share (pooled over the group's sets) bounds it instead.
                sizes = [len(outs[m][self.score]) for m in members]
                shares = [table[m][self.score]["fpr95"] for m in members]
                lo_fp, hi_fp = proportion_interval(round(sum(s * n for s, n in zip(shares, sizes))), sum(sizes))
                lo_fp, hi_fp = min(lo_fp, value_fp), max(hi_fp, value_fp)
            details = {"score": self.score, "sets": members, "table": {m: table[m] for m in members}}
            if missing:
                details["notes"] = [f"mahalanobis and knn scores not measured: {missing}"]
            warnings = auroc_warnings(self.score, group, value_au, hi_au, {m: table[m][self.score]["auroc"] for m in members})
            if warnings:
                details["warnings"] = warnings
            evidence.append(self.evidence(candidate, f"{group}_ood_auroc", value_au, (lo_au, hi_au), view=f"ood:{group}",
                                          details=details, figures=("ood_scores",)))
            evidence.append(self.evidence(candidate, f"{group}_ood_fpr95", value_fp, (lo_fp, hi_fp), view=f"ood:{group}",
                                          details={"score": self.score, **({"warnings": warnings} if warnings else {})}))
        return evidence


def auroc_warnings(score: str, group: str, value: float, high: float, by_set: Mapping[str, float]) -> list[str]:
    """Warnings for an AUROC below chance: the score ranks those OOD inputs as more in-distribution than real ones."""
    out = []
    if value < 0.5:
        strength = "significantly (its 95% interval is below 0.5)" if high < 0.5 else "though its 95% interval reaches 0.5"
        out.append(f"{group}-OOD AUROC {value:.3f} is below chance, {strength}: the '{score}' score rates OOD inputs as more "
                   f"in-distribution than real ones, so a threshold on it would reject real inputs first; try another score")
    below = {m: a for m, a in by_set.items() if a < 0.5}
    if below and (value >= 0.5 or len(by_set) > 1):
        out.append(f"the '{score}' score is below chance on OOD set{'s' if len(below) > 1 else ''} "
                   f"{', '.join(f'{m} (AUROC {a:.3f})' for m, a in below.items())}: it rates those inputs as more in-distribution than real ones")
    return out
