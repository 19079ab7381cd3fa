"""The shared inference cache: one batched forward pass per (candidate, split, view).

Checks never call a model for a forward pass of their own; they ask this
cache. Results live in memory for the run and on disk under
``runs/<id>/predictions/<candidate id>/``, keyed by the candidate's content
hash, the task's data hash, the split and the view name, so a resumed run or
a rebuilt report reads them back instead of recomputing. A view such as
``corrupt:gaussian_noise@3`` is materialised by ``data.views`` only when its
predictions are not cached yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_path
from ..data.lazy import batches
from ..data.task import Task
from ..data.views import ViewName, apply_view
from ..models.candidate import Candidate
from ..models.inputs import as_input


@dataclass(frozen=True, eq=False)
class Predictions:
    """Model outputs on one split seen through one view.

    Attributes:
        logits: ``(N, K)`` float32.
        labels: ``(N,)`` int64 true classes.
        embeddings: ``(N, D)`` float32 penultimate features, when asked for.
        seconds: forward-pass time spent producing them (0 when read back).
    """

    logits: np.ndarray
    labels: np.ndarray
    split: str
    view: str
    embeddings: np.ndarray | None = None
    seconds: float = 0.0

    @cached_property
    def probs(self) -> np.ndarray:
        """Softmax of the logits in float64 ``(N, K)``."""
        z = self.logits.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @cached_property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


@dataclass
class PredictionCache:
    """Computes predictions once and hands them to every check.

    Args:
        folder: where to keep them on disk (``None``: memory only).
        device: where to run the models.
        batch_size: inference batch size.
        seed: seeds random views.
    """

    folder: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 512
    seed: int = 0
    forward_seconds: float = 0.0
    _memory: dict[tuple, Predictions] = field(default_factory=dict, repr=False)

    def get(self, candidate: Candidate, task: Task, *, split: str = "test", view: str = "clean", embeddings: bool = False) -> Predictions:
        """Predictions of ``candidate`` on ``task``'s ``split`` through ``view``."""
        key = (candidate.id, task.digest()[:16], split, view)
        found = self._memory.get(key)
        if found is not None and (found.embeddings is not None or not embeddings):
            return found
        found = self._read(key, embeddings)
        if found is None:
            found = self._compute(candidate, apply_view(task, split, view, seed=self.seed), split, view, embeddings)
            self._write(key, found)
        self._memory[key] = found
        return found

    def prefetch(self, candidates: list[Candidate], task: Task, requests: set[tuple[str, str, bool]], *, progress: bool = False) -> None:
        """Compute every requested (split, view) for every candidate, each view materialised once.

        Requests for the same (split, view) merge: embeddings are kept when any
        check asks for them, so one pass serves both kinds of reader.
        """
        from tqdm.auto import tqdm

        merged: dict[tuple[str, str], bool] = {}
        for split, view, embeddings in requests:
            merged[(split, view)] = merged.get((split, view), False) or embeddings
        with tqdm(total=len(merged) * len(candidates), desc="predictions", unit="pass", disable=not progress, dynamic_ncols=True) as bar:
            for (split, view), embeddings in sorted(merged.items()):
                data = None
                for candidate in candidates:
                    bar.set_postfix_str(f"{candidate.name}: {split}/{view}")
                    key = (candidate.id, task.digest()[:16], split, view)
                    found = self._memory.get(key) or self._read(key, embeddings)
                    if found is None or (embeddings and found.embeddings is None):
                        data = data if data is not None else apply_view(task, split, view, seed=self.seed)
                        found = self._compute(candidate, data, split, view, embeddings)
                        self._write(key, found)
                    self._memory[key] = found
                    bar.update()

    def _compute(self, candidate: Candidate, data, split: str, view: str, embeddings: bool) -> Predictions:
        candidate.to(self.device)
        logits, feats = [], []
        started = time.perf_counter()
        for _, batch in batches(data.x, self.batch_size):  # a lazy dataset is decoded one batch at a time
            out, emb = candidate.forward(as_input(batch), embeddings=embeddings)
            logits.append(out.float().cpu())
            if emb is not None:
                feats.append(emb.float().cpu())
        if candidate.device.type == "cuda":
            torch.cuda.synchronize(candidate.device)
        seconds = time.perf_counter() - started
        self.forward_seconds += seconds
        return Predictions(
            logits=torch.cat(logits).numpy(),
            labels=np.asarray(data.y, dtype=np.int64),
            split=split,
            view=view,
            embeddings=torch.cat(feats).numpy() if feats else None,
            seconds=seconds,
        )

    def _path(self, key: tuple) -> Path | None:
        if self.folder is None:
            return None
        cand, data, split, view = key
        return self.folder / cand / f"{data}-{split}-{ViewName.parse(view).filename()}.npz"

    def _read(self, key: tuple, embeddings: bool) -> Predictions | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            if embeddings and "embeddings" not in z:
                return None
            return Predictions(
                logits=z["logits"], labels=z["labels"], split=key[2], view=key[3], embeddings=z["embeddings"] if "embeddings" in z else None
            )

    def _write(self, key: tuple, predictions: Predictions) -> None:
        path = self._path(key)
        if path is None:
            return
        arrays = {"logits": predictions.logits, "labels": predictions.labels}
        if predictions.embeddings is not None:
            arrays["embeddings"] = predictions.embeddings
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
