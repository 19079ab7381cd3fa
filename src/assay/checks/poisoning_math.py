"""The poisoning check's math: which training examples look planted, from a model's penultimate features.

Pure functions on numpy arrays, no I/O; ``checks/poisoning.py`` gathers the
inputs and records the evidence. Everything works one class at a time (by the
training label, which for a poisoned example is the attacker's target), so the
working memory is one class's features plus a few ``D x D`` matrices, whatever
the size of the training set: ``features`` may be a read-only memory map (the
prediction cache's), of which only one class's rows are copied (in float64,
a chunk at a time), centred in place, and never multiplied into a second
``(n, D)`` array: the spectral directions come from the class's ``D x D``
scatter, and the rows are only ever projected onto a few of them.

The two published detectors, and how they are combined here:

* **Spectral signatures** (Tran, Li & Madry 2018): within a class, poisoned
  examples shift the features along one direction, so the top right singular
  vector ``v`` of the centred class features points at them and the score of
  example ``i`` is ``((f_i - mean) . v)^2``. ``spectral_signature`` is that
  score, exactly.
* **Activation clustering** (Chen et al. 2018): 2-means on a low-dimensional
  projection of each class's features; a poisoned class splits into a clean
  and a poisoned cluster, judged by the silhouette and the clusters' sizes.

Measured on digits (a small CNN, 32 features, BadNets 3x3 patch into class
0), neither works as published on raw features: the top direction of the
target class is the class's own natural variation (spectral signatures put
32 of 63 poisoned examples among the top scores at 5% poisoning), and
2-means on raw features cuts clean classes as readily as the poisoned one
(its smaller cluster held 32 of 63 poisoned examples and 25 clean ones).
So, following SPECTRE (Hayase et al. 2021), the features are first
*whitened* by the pooled within-class covariance of the *other* classes:
natural variation then weighs 1 in every direction, and what remains large
is what this class has and the others do not. On whitened features:

1. the spectral decomposition of the class gives its directions of excess
   variance (the top one is Tran et al.'s ``v``, its eigenvalue per example
   the class's ``excess_variance``);
2. activation clustering runs on the projection onto the top ``dims`` of
   them (PCA of the whitened features, ``v`` included): 2-means, silhouette;
3. which cluster is suspect is decided by *spread*, not size, measured in
   the model's own (unwhitened) features, where what a classifier learns is
   to keep classes apart: a BadNets cluster gathers examples of every source
   class behind one trigger, so it is far more spread than any natural
   sub-mode of one class (measured on digits CNNs: 2.9-3.5 times the other
   cluster's mean squared distance to its centre; clean classes' two
   clusters stay within 2.0 of each other). Size would mislead: at 10%
   poisoning into one of ten classes the poisoned cluster is *half* the
   class, and "the smaller cluster" picks the clean half;
4. a class is called poisoned only when its clusters are separated
   (silhouette >= ``min_silhouette``) *and* the suspect one is at least
   ``min_spread_ratio`` times as spread: two conditions a clean class rarely
   meets together, which keeps the false-positive rate on clean classes low
   without knowing the truth;
5. in a poisoned class the suspect cluster is flagged. Each example's
   suspicion is its position on the line from the clean cluster's centre
   (0) to the suspect one's (1): flagged exactly when above 0.5 (2-means
   assigns the nearer centre), and the order in which the report shows them.

Spectral scores alone are kept in the record too, but they do not decide:
at 10% poisoning the class mean sits between the two groups and both score
alike (the top 1.5x of scores held 49 of 126 poisoned examples).

Where it fails: a model whose features collapse the poisoned examples onto
one compact "trigger" feature (a 2-layer MLP on digits: its poisoned cluster
was 1.0-1.4 times as spread as the clean one) gives no spread contrast; the
class is then not called poisoned, so nothing is flagged rather than the
wrong half. The thresholds were set on digits CNNs and are options of the
check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_DIMS = 256  # features wider than this are projected onto the top directions of the pooled within-class scatter first
CHUNK_BYTES = 1 << 24  # float64 rows worked on at once where a step goes through a class in blocks (about 16 MB)
MIN_CLASS_SIZE = 10  # fewer examples than this: no clustering, nothing flagged
SILHOUETTE_SAMPLE = 2000  # the silhouette costs n^2: estimated on a seeded sample of large classes


@dataclass(frozen=True)
class Scatter:
    """Per-class counts and means and the pooled within-class scatter, computed one class at a time.

    Attributes:
        classes: the class indices present, ``(K,)``.
        counts: examples per class ``(K,)``.
        means: class means ``(K, D)`` in the working space.
        total: the summed within-class scatter ``sum_c (F_c - m_c)' (F_c - m_c)``, ``(D, D)``.
        basis: ``(D_in, D)`` projection from the features into the working space (``None``: the identity).
    """

    classes: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    total: np.ndarray
    basis: np.ndarray | None = None

    def centred_class(self, features: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, centred)``: the positions of class ``classes[k]`` and its features in the working space minus its mean ``(n, D)``."""
        rows = np.flatnonzero(labels == self.classes[k])
        centred = class_rows(features, rows, self.basis)
        centred -= self.means[k]  # in place: no second (n, D) array
        return rows, centred


def class_rows(features: np.ndarray, rows: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
    """``features[rows]`` as float64 ``(n, D)`` (times ``basis`` when given), copied a block of rows at a time.

    Only these rows are read from ``features`` (an array or a memory map), and
    no float32 copy of the whole class exists beside the float64 one.
    """
    out = np.empty((len(rows), features.shape[1] if basis is None else basis.shape[1]))
    for block in _blocks(len(rows), features.shape[1]):
        part = np.asarray(features[rows[block]], dtype=np.float64)
        out[block] = part if basis is None else part @ basis
    return out


def _blocks(n: int, width: int) -> list[slice]:
    """Consecutive row slices of about ``CHUNK_BYTES`` of float64 rows ``width`` wide."""
    step = max(CHUNK_BYTES // (8 * max(width, 1)), 1)
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def class_scatter(features: np.ndarray, labels: np.ndarray, max_dims: int = MAX_DIMS) -> Scatter:
    """Means and pooled within-class scatter of ``features`` ``(N, D)`` by ``labels``, class by class.

    Wider features than ``max_dims`` are projected onto the top ``max_dims``
    eigenvectors of the pooled scatter (a second pass, again class by class).
    """
    classes = np.unique(labels)
    stats = _scatter(features, labels, classes, None)
    if stats.total.shape[0] <= max_dims:
        return stats
    _, vectors = np.linalg.eigh(stats.total)
    return _scatter(features, labels, classes, vectors[:, ::-1][:, :max_dims].copy())


def _scatter(features: np.ndarray, labels: np.ndarray, classes: np.ndarray, basis: np.ndarray | None) -> Scatter:
    d = features.shape[1] if basis is None else basis.shape[1]
    counts, means, total = np.zeros(len(classes), np.int64), np.zeros((len(classes), d)), np.zeros((d, d))
    for k, c in enumerate(classes):
        f = class_rows(features, np.flatnonzero(labels == c), basis)  # (n_c, D): one class in memory at a time
        counts[k], means[k] = len(f), f.mean(0)
        f -= means[k]
        total += f.T @ f
        del f  # before the next class's rows are copied
    return Scatter(classes, counts, means, total, basis)


def inverse_sqrt(covariance: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """``C^(-1/2)`` of a symmetric covariance, its eigenvalues floored at ``ridge`` times the largest (dead features stay finite)."""
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, ridge * max(float(values.max()), 1e-12))
    return (vectors / np.sqrt(values)) @ vectors.T


def spectral_signature(centred: np.ndarray, whitening: np.ndarray | None = None, scatter: np.ndarray | None = None,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tran et al. 2018: each row's squared projection on the top right singular vector of ``g = centred @ whitening``.

    The right singular vectors of ``g`` are the eigenvectors of its ``D x D``
    scatter ``W' (C'C) W``, so ``g`` itself (another ``(n, D)`` array, and an
    SVD's as large again) is never formed: only the scores' one projection.

    Args:
        centred: ``(n, D)`` rows minus their mean.
        whitening: ``(D, D)`` (``None``: the identity).
        scatter: ``centred' centred`` when the caller has it.

    Returns:
        ``(scores (n,), right singular vectors of g (D, D) as rows by decreasing singular value, singular values (D,))``.
    """
    scatter = centred.T @ centred if scatter is None else scatter
    gram = scatter if whitening is None else whitening.T @ scatter @ whitening  # (D, D): g'g
    values, vectors = np.linalg.eigh(gram)
    vt, singular = vectors[:, ::-1].T, np.sqrt(np.maximum(values[::-1], 0.0))
    top = vt[0] if whitening is None else whitening @ vt[0]  # g @ v = centred @ (W v)
    return (centred @ top) ** 2, vt, singular


def two_means(z: np.ndarray, seed: int) -> np.ndarray:
    """Activation clustering's 2-means (Chen et al. 2018): a 0/1 label per row of ``z`` ``(n, d)``."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # a few thousand 2-D points: threads beside torch's pool only slow it down on a small machine
        return KMeans(n_clusters=2, n_init=10, random_state=seed).fit(z).labels_


def silhouette(z: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Mean silhouette of a 2-cluster split (Rousseeuw 1987), on a seeded sample of a large class."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2:
        return 0.0
    size = SILHOUETTE_SAMPLE if len(z) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(z, labels, sample_size=size, random_state=seed))


def cluster_spread(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each cluster's mean squared distance of its rows to its centre, ``(2,)``, a block of rows at a time."""
    out = np.zeros(2)
    for j in (0, 1):
        members = np.flatnonzero(labels == j)
        if len(members):
            blocks = _blocks(len(members), x.shape[1])
            centre = sum(x[members[b]].sum(0) for b in blocks) / len(members)
            out[j] = sum(float(((x[members[b]] - centre) ** 2).sum()) for b in blocks) / len(members)
    return out


@dataclass(frozen=True)
class ClassFinding:
    """What the detector found in one class (indices are positions within the class's rows).

    Attributes:
        poisoned: whether the class is called poisoned.
        flagged: ``(n,)`` bool, the examples flagged (none when the class is not called poisoned).
        suspicion: ``(n,)`` position between the clean centre (0) and the suspect one (1); flagged above 0.5.
        spectral: ``(n,)`` Tran et al.'s spectral-signature score on the whitened features.
        silhouette: of the 2-means split.
        spread_ratio: the suspect cluster's spread over the other's in the unwhitened features (>= 1).
        suspect_share: the suspect cluster's share of the class.
        excess_variance: the top eigenvalue of the whitened class covariance (1 = as much as the other classes).
        reason: why the class is or is not called poisoned, in words.
    """

    poisoned: bool
    flagged: np.ndarray
    suspicion: np.ndarray
    spectral: np.ndarray
    silhouette: float
    spread_ratio: float
    suspect_share: float
    excess_variance: float
    reason: str


def detect_in_class(
    centred: np.ndarray, whitening: np.ndarray, *, scatter: np.ndarray | None = None, dims: int = 2, min_silhouette: float = 0.4,
    min_spread_ratio: float = 2.4, seed: int = 0,
) -> ClassFinding:
    """Score and flag one class's examples (``centred`` ``(n, D)``: in the working space, minus the class mean; whitened by ``whitening``).

    ``scatter``: ``centred' centred`` when the caller has it. See the module docstring for the method and why.
    """
    n = len(centred)
    if n < MIN_CLASS_SIZE:
        zeros = np.zeros(n)
        return ClassFinding(False, np.zeros(n, bool), zeros, zeros, 0.0, 1.0, 0.0, 0.0,
                            f"{n} examples: too few to cluster (at least {MIN_CLASS_SIZE})")
    # g = centred @ whitening is 1 in every direction where the other classes vary naturally; it is only ever projected
    spectral, vt, singular = spectral_signature(centred, whitening, scatter)
    z = centred @ (whitening @ vt[: min(dims, n, len(vt))].T)  # (n, dims): g on the class's top directions of excess variance
    labels = two_means(z, seed)
    spread = cluster_spread(centred, labels)
    suspect = int(np.argmax(spread))
    ratio = float(spread[suspect] / max(spread[1 - suspect], 1e-12))
    sil = silhouette(z, labels, seed)
    centre_clean, centre_suspect = z[labels != suspect].mean(0), z[labels == suspect].mean(0)
    line = centre_suspect - centre_clean
    suspicion = (z - centre_clean) @ line / max(float(line @ line), 1e-12)
    poisoned = sil >= min_silhouette and ratio >= min_spread_ratio
    share = float((labels == suspect).mean())
    if poisoned:
        reason = f"split in two (silhouette {sil:.2f}), one part {ratio:.2f}x as spread as the other: examples of several kinds behind one label"
    elif sil < min_silhouette:
        reason = f"no clear split (silhouette {sil:.2f} < {min_silhouette:g})"
    else:
        reason = f"split in two (silhouette {sil:.2f}) but alike in spread ({ratio:.2f}x < {min_spread_ratio:g}): a natural sub-mode"
    return ClassFinding(poisoned, (suspicion > 0.5) if poisoned else np.zeros(n, bool), suspicion, spectral, sil, ratio, share,
                        float(singular[0] ** 2 / n), reason)


def detect(features: np.ndarray, labels: np.ndarray, *, dims: int = 2, min_silhouette: float = 0.4, min_spread_ratio: float = 2.4,
           seed: int = 0, max_dims: int = MAX_DIMS) -> dict[int, tuple[np.ndarray, ClassFinding]]:
    """Every class's finding: class index -> (the rows of that class in ``features``, its ``ClassFinding``).

    Each class is whitened by the pooled within-class covariance of the other
    classes (leave-one-class-out, so a poisoned class does not whiten its own
    poison away); a task with one class present is whitened by its own.
    ``features`` ``(N, D)`` may be a memory map: two passes read it class by
    class (the pooled scatter, then each class's detection).
    """
    stats = class_scatter(features, labels, max_dims)
    total, count = stats.total, int(stats.counts.sum())
    out = {}
    for k, c in enumerate(stats.classes):
        rows, centred = stats.centred_class(features, labels, k)  # (n_c, D): this class only
        own = centred.T @ centred
        others = count - int(stats.counts[k])
        covariance = (total - own) / others if others > len(stats.classes) else total / count
        finding = detect_in_class(centred, inverse_sqrt(covariance), scatter=own, dims=dims, min_silhouette=min_silhouette,
                                  min_spread_ratio=min_spread_ratio, seed=seed)
        out[int(c)] = (rows, finding)
        del centred  # before the next class's rows are copied
    return out


def confusion(flagged: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Counts of a detector's flags against the truth: ``tp``, ``fp``, ``fn``, ``tn`` (both ``(N,)`` bool)."""
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    return {"tp": int((flagged & truth).sum()), "fp": int((flagged & ~truth).sum()),
            "fn": int((~flagged & truth).sum()), "tn": int((~flagged & ~truth).sum())}


def top_rows(rows: Sequence[int], suspicion: np.ndarray, flagged: np.ndarray, k: int) -> list[int]:
    """The ``k`` flagged rows with the highest suspicion, most suspicious first."""
    order = np.argsort(-suspicion[flagged], kind="stable")[:k]
    return [int(r) for r in np.asarray(rows)[flagged][order]]
