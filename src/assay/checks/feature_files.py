"""The prediction cache's penultimate features on disk: written batch by batch, read memory-mapped and verified.

A training split's ``(N, D)`` features can be larger than the memory a check
should hold at once (a poisoning detector reads them one class at a time).
So the cache keeps them out of its ``.npz`` (which ``np.load`` can only read
whole) in a plain ``.npy`` beside it:

* ``writing_features`` opens the file as a memory map in a temporary path
  (``_io.atomic_path``), takes the forward pass's batches as they come, and
  renames it when every row is there: a crash leaves no file that reads as
  valid, and the process never holds more than a batch of them;
* its ``FeatureRecord`` (shape, dtype and a SHA-256 taken in chunks) goes in
  the ``.npz``'s record of what it holds;
* ``open_features`` maps the file read-only (``mmap_mode="r"``) and checks it
  against that record, again in chunks: a damaged, truncated or swapped file
  raises ``DamagedFeatures`` and the cache recomputes, never reads it.

Mapped pages are file-backed and clean: the kernel can drop them under
pressure, so they do not count as the process's own (anonymous) memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path

CHUNK_BYTES = 1 << 24  # rows hashed or copied per step: about 16 MB of them


class DamagedFeatures(ValueError):
    """A features file that does not match its record (the cache recomputes it)."""


@dataclass(frozen=True)
class FeatureRecord:
    """What a features file holds: ``shape`` ``(N, D)``, ``dtype`` (numpy's ``str``, e.g. ``<f4``) and the SHA-256 of its rows."""

    shape: tuple[int, ...]
    dtype: str
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: Any) -> FeatureRecord:
        """The record as ``as_json`` wrote it; ``DamagedFeatures`` when it is not one."""
        try:
            return cls(tuple(int(n) for n in data["shape"]), str(data["dtype"]), str(data["sha256"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DamagedFeatures(f"its features record is damaged ({error!r})") from None


def checksum(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and rows, read ``CHUNK_BYTES`` at a time (a memory map is never copied whole)."""
    h = hashlib.sha256(f"{array.dtype.str}|{tuple(array.shape)}".encode())
    for part in _chunks(array):
        h.update(memoryview(np.ascontiguousarray(part)).cast("B"))
    return h.hexdigest()


class FeatureSink:
    """Takes ``(first row, (B, D) batch)`` pairs into an ``(N, D)`` float32 memory map; see ``writing_features``."""

    def __init__(self, tmp: Path, rows: int) -> None:
        self.tmp, self.rows, self.written = tmp, rows, 0
        self._array: np.memmap | None = None
        self.record: FeatureRecord | None = None

    def put(self, start: int, batch: torch.Tensor | np.ndarray) -> None:
        batch = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        if self._array is None:  # the first batch tells the row shape
            self._array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(self.rows, *batch.shape[1:]))
        self._array[start : start + len(batch)] = batch
        self.written += len(batch)

    def _finish(self) -> None:
        if self.written != self.rows:  # the forward pass hands every row once: anything else is a bug, never a short file
            raise RuntimeError(f"{self.tmp.name}: {self.written} feature rows written of {self.rows}")
        if self._array is None:  # no rows at all: an empty (0, 0) array keeps the format
            self._array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(0, 0))
        self._array.flush()
        self.record = FeatureRecord(tuple(self._array.shape), self._array.dtype.str, checksum(self._array))
        del self._array
        self._array = None


@contextmanager
def writing_features(path: Path, rows: int) -> Iterator[FeatureSink]:
    """A sink for ``rows`` feature rows, written into a temporary file renamed to ``path`` when the block ends well.

    After the block, ``sink.record`` describes the file. An exception in the
    block (or rows missing) leaves ``path`` as it was and no temporary file.
    """
    with atomic_path(path) as tmp:
        sink = FeatureSink(tmp, rows)
        yield sink
        sink._finish()


def write_features(path: Path, features: np.ndarray) -> FeatureRecord:
    """Write an array already in memory (or mapped) to ``path`` the same way, chunk by chunk; return its record."""
    with writing_features(path, len(features)) as sink:
        start = 0
        for part in _chunks(features):
            sink.put(start, part)
            start += len(part)
    return sink.record


def open_features(path: Path, record: FeatureRecord | Mapping[str, Any]) -> np.ndarray:
    """The features at ``path`` mapped read-only, after checking them against ``record`` chunk by chunk.

    Raises:
        DamagedFeatures: the file is missing, unreadable, truncated, of another shape or dtype, or its rows changed.
    """
    record = record if isinstance(record, FeatureRecord) else FeatureRecord.from_json(record)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DamagedFeatures(f"its features file {Path(path).name} is missing") from None
    except (OSError, ValueError, EOFError) as error:
        raise DamagedFeatures(f"cannot read its features file {Path(path).name} ({error})") from None
    if tuple(array.shape) != record.shape or array.dtype.str != record.dtype:
        raise DamagedFeatures(f"its features file holds {array.dtype.str}{list(array.shape)}, not {record.dtype}{list(record.shape)}")
    if checksum(array) != record.sha256:
        raise DamagedFeatures("its features file does not match its checksum (changed after writing)")
    return array


def _chunks(array: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive row blocks of about ``CHUNK_BYTES`` each (views, not copies, of a C-ordered array or map)."""
    row = max(int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize, 1)
    step = max(CHUNK_BYTES // row, 1)
    for i in range(0, len(array), step):
        yield array[i : i + step]
