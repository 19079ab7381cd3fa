"""The math of the ``explain`` check as pure functions on arrays: no models, no I/O.

* feature groups: an input's dimensions summed into the features a person
  reads (a pixel over its channels, a token, a table's original column over
  its one-hot columns);
* deletion and insertion curves (Petsiuk et al. 2018): which features are
  removed at each step, and the area under each curve;
* rank agreement: per-example Spearman correlation and top-k overlap, used
  by the randomisation sanity check (Adebayo et al. 2018), by the agreement
  between methods and by explanation drift against a parent;
* attention rollout (Abnar & Zuidema 2020) and Grad-CAM (Selvaraju et al. 2017);
* the global view a shortcut shows in: mean |attribution| per feature, per class;
* KernelSHAP's players shared back out over the features they cover, and the
  examples worth showing (the most confident right and wrong predictions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def group_sum(attributions: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, F)``: each feature's attribution, the sum of its dimensions' (``attributions`` is ``(N, D)`` flat)."""
    flat = np.asarray(attributions, dtype=np.float64).reshape(len(attributions), -1)
    return np.stack([flat[:, g].sum(axis=1) for g in groups], axis=1) if groups else np.zeros((len(flat), 0))


def share_out(values: np.ndarray, player: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """``(F,)``: each player's value shared out over its input dimensions equally, then summed per feature.

    ``player`` ``(D,)`` names each dimension's player (an index into
    ``values``; one past the end: a player with no value, e.g. pooled padding).
    A feature that spans players (or a player that spans features) gets its
    dimensions' shares, so the features' sum is the players' sum.
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(player, minlength=len(values) + 1)[: len(values)]
    per_dim = np.append(values / np.maximum(counts, 1), 0.0)[np.minimum(player, len(values))]  # (D,)
    return group_sum(per_dim[None], groups)[0]


def owner_of(groups: Sequence[np.ndarray], width: int) -> np.ndarray:
    """``(D,)``: the feature each flat dimension belongs to."""
    owner = np.full(width, -1, dtype=np.int64)
    for j, g in enumerate(groups):
        owner[g] = j
    return owner


def removal_masks(attributions: np.ndarray, eligible: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """``(N, S, F)`` bool: the features removed at each step, the most attributed first.

    At step ``s`` the ``round(fractions[s] * m_i)`` highest-ranked of the
    ``m_i`` eligible features of example ``i`` are removed (features that are
    already the baseline, e.g. padding, are not eligible). Ties are broken by
    position, so the masks are deterministic.
    """
    a = np.where(eligible, np.asarray(attributions, dtype=np.float64), -np.inf)
    order = np.argsort(-a, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(a.shape[1])[None].repeat(len(a), 0), axis=1)
    counts = np.rint(fractions[None, :] * eligible.sum(axis=1)[:, None]).astype(np.int64)  # (N, S)
    return rank[:, None, :] < counts[:, :, None]


def curve_auc(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Area under each curve ``(..., S)`` over ``fractions`` (trapezoid rule): in [0, 1] for probabilities."""
    y = np.asarray(curves, dtype=np.float64)
    return ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(fractions)).sum(axis=-1)


def spearman_rows(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (average ranks for ties).

    ``mask`` ``(N, F)`` keeps only the features that count (padding would
    otherwise add ties at zero that agree in every model). A row that is
    constant in either has no ranking: its correlation is 0 (no agreement
    shown), so the mean over examples stays finite.
    """
    return correlate_ranks(row_ranks(a, mask), row_ranks(b, mask))


def row_ranks(a: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``(N, F)``: each row's average ranks among the ``mask``'s features (NaN elsewhere); rank once, correlate many times."""
    a = np.asarray(a, dtype=np.float64)
    if mask is not None:
        a = np.where(mask, a, np.nan)
    return rankdata(a, axis=1, nan_policy="omit")


def correlate_ranks(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """``spearman_rows`` from ``row_ranks`` of the same mask: the Pearson correlation of each row's ranks (0 for a constant row)."""
    ra, rb = ra - np.nanmean(ra, 1, keepdims=True), rb - np.nanmean(rb, 1, keepdims=True)
    denom = np.sqrt(np.nansum(ra**2, 1) * np.nansum(rb**2, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.nansum(ra * rb, 1) / np.where(denom > 0, denom, 1), 0.0)


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per row, the share of ``a``'s top ``k`` features that are also in ``b``'s top ``k`` (among ``mask``'s features)."""
    return shared_share(top_k(a, k, mask), top_k(b, k, mask))


def top_k(a: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """``(N, k)``: each row's ``k`` highest features among ``mask``'s (ties by position), for ``shared_share``."""
    if mask is not None:
        a = np.where(mask, a, -np.inf)
    k = max(1, min(k, a.shape[1]))
    return np.argsort(-a, axis=1, kind="stable")[:, :k]


def shared_share(top_a: np.ndarray, top_b: np.ndarray) -> np.ndarray:
    """Per row, the share of ``top_a``'s features also in ``top_b`` (two ``top_k`` results)."""
    return (top_a[:, :, None] == top_b[:, None, :]).any(axis=2).mean(axis=1)


def attention_rollout(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): ``(N, T, T)``, how much each token's output draws on each input token.

    Each block's heads are averaged, the residual connection added as the
    identity (``0.5 A + 0.5 I``), rows renormalised, and the blocks
    multiplied from the first to the last.
    """
    out = None
    for m in maps:  # (N, heads, T, T)
        a = np.asarray(m, dtype=np.float64).mean(axis=1)
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])[None]
        a = a / a.sum(axis=-1, keepdims=True)
        out = a if out is None else a @ out
    return out


def rollout_readout(rollout: np.ndarray, pooling: str, mask: np.ndarray | None = None) -> np.ndarray:
    """``(N, T)``: how much the model's pooled output draws on each input token, from a rollout ``(N, T', T')``.

    ``pooling = "cls"``: the model prepended a [CLS] token and reads it (the
    zoo transformer): its row, its own column dropped (``T = T' - 1``).
    ``"mean"``: the output is the mean of the ``mask``'s tokens (``(N, T')``;
    a sentence encoder's masked mean pooling): the mean of their rows.
    """
    if pooling == "cls":
        return rollout[:, 0, 1:]
    if pooling != "mean" or mask is None:
        raise ValueError(f"rollout readout: pooling {pooling!r} needs 'cls', or 'mean' with a token mask")
    w = np.asarray(mask, dtype=np.float64)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    return np.einsum("nt,nts->ns", w, rollout)


def grad_cam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): ``ReLU(sum_c mean(dy/dA_c) A_c)`` over a conv layer's ``(N, C, *spatial)`` maps."""
    a, g = np.asarray(activations, dtype=np.float64), np.asarray(gradients, dtype=np.float64)
    axes = tuple(range(2, a.ndim))
    weights = g.mean(axis=axes, keepdims=True)  # (N, C, 1...)
    return np.maximum((weights * a).sum(axis=1), 0.0)


def completeness_error(attribution_sums: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """``|sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|`` per example (0: complete)."""
    gaps = np.asarray(gaps, dtype=np.float64)
    return np.abs(np.asarray(attribution_sums) - gaps) / np.maximum(np.abs(gaps), 1e-6)


def global_importance(attributions: np.ndarray, labels: np.ndarray, names: Sequence[str], classes: Sequence[str], k: int) -> dict:
    """Mean |attribution| per feature over the sample and per class, and the top ``k`` of each (the shortcut finder's view)."""
    mag = np.abs(np.asarray(attributions, dtype=np.float64))
    overall = mag.mean(axis=0)

    def top(v: np.ndarray) -> list[dict]:
        order = np.argsort(-v, kind="stable")[: min(k, len(v))]
        return [{"feature": str(names[j]), "index": int(j), "importance": float(v[j])} for j in order]

    class_mean = {str(classes[c]): mag[labels == c].mean(axis=0) for c in np.unique(labels)}
    return {"mean_abs": overall.tolist(), "top": top(overall), "per_class": {c: top(v) for c, v in class_mean.items()},
            "class_mean_abs": {c: v.tolist() for c, v in class_mean.items()}}


def confident_examples(right: np.ndarray, confidence: np.ndarray, k: int = 2) -> list[tuple[str, int]]:
    """``(role, row)``: the ``k`` most confident right predictions, then the ``k`` most confident wrong ones (fewer when there are fewer)."""
    picks = []
    for role, rows in (("most confident right", np.flatnonzero(right)), ("most confident wrong", np.flatnonzero(~right))):
        order = rows[np.argsort(-np.asarray(confidence)[rows], kind="stable")][:k]
        picks += [(role, int(i)) for i in order]
    return picks


def token_importance(attributions: np.ndarray, ids: np.ndarray, labels: np.ndarray, names: dict[int, str], classes: Sequence[str],
                     k: int, pad: int = 0, min_count: int = 3) -> dict:
    """Mean |attribution| per token (over its occurrences, padding left out), overall and per class; tokens seen fewer than ``min_count`` times are left out."""
    mag = np.abs(np.asarray(attributions, dtype=np.float64))

    def top(rows: np.ndarray) -> list[dict]:
        t, m = ids[rows].ravel(), mag[rows].ravel()
        keep = t != pad
        t, m = t[keep], m[keep]
        if not len(t):
            return []
        vocab, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
        mean = np.bincount(inverse, weights=m) / counts
        mean = np.where(counts >= min(min_count, counts.max()), mean, -np.inf)
        order = [j for j in np.argsort(-mean, kind="stable")[:k] if np.isfinite(mean[j])]
        return [{"feature": names.get(int(vocab[j]), str(int(vocab[j]))), "index": int(vocab[j]), "importance": float(mean[j]),
                 "count": int(counts[j])} for j in order]

    rows = np.arange(len(ids))
    return {"top": top(rows), "per_class": {str(classes[c]): top(rows[labels == c]) for c in np.unique(labels)}}


def top_k_recall(importance: np.ndarray, planted: Sequence[int], k: int) -> float:
    """Share of the ``planted`` features among the ``k`` most important ones."""
    top = set(np.argsort(-np.asarray(importance), kind="stable")[:k].tolist())
    return len(top & set(planted)) / max(1, len(planted))
