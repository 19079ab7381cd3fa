"""LazyImages: an image folder read on demand instead of held in memory.

A ``Split`` may hold one in place of an array. Evaluation streams it batch
by batch (``x[i:j]`` decodes only those files); code that needs the whole
array at once (training, corruptions) calls ``np.asarray`` and gets it. Files
are validated when the task is loaded, so a broken file is still named up
front, and the content hash covers each file's bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class LazyImages:
    """Images decoded on access, as float32 ``(N, C, H, W)`` on [0, 1].

    Args:
        files: image paths, one per example.
        mode: Pillow mode, ``"L"`` or ``"RGB"``.
        size: ``(W, H)`` every image is resized to (bilinear) when it differs.
    """

    def __init__(self, files: Sequence[Path], mode: str, size: tuple[int, int]) -> None:
        self.files = [Path(f) for f in files]
        self.mode, self.size = mode, tuple(size)
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), 1 if self.mode == "L" else 3, self.size[1], self.size[0])

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"LazyImages({len(self)} files, mode={self.mode!r}, size={self.size})"

    def take(self, index: np.ndarray) -> LazyImages:
        """The examples at ``index``, still lazy."""
        return LazyImages([self.files[i] for i in np.arange(len(self))[index]], self.mode, self.size)

    def __getitem__(self, index) -> np.ndarray:
        chosen = self.files[index] if isinstance(index, slice) else [self.files[i] for i in np.atleast_1d(np.arange(len(self))[index])]
        out = np.stack([self._read(f) for f in chosen]) if chosen else np.zeros((0, *self.shape[1:]), np.float32)
        return out[0] if isinstance(index, (int, np.integer)) else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out

    def _read(self, path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as img:
            img = img.convert(self.mode)
            if img.size != self.size:
                img = img.resize(self.size, Image.BILINEAR)
            pixels = np.asarray(img, dtype=np.float32) / 255.0
        return pixels.reshape(self.size[1], self.size[0], -1).transpose(2, 0, 1)  # (C, H, W)

    def digest_into(self, h: "hashlib._Hash") -> None:
        """Hash each file's bytes and the decoding settings."""
        h.update(f"{self.mode}|{self.size}".encode())
        for f in self.files:
            h.update(hashlib.sha256(f.read_bytes()).digest())


def batches(x, size: int):
    """``(start, array)`` for consecutive batches of an array or a lazy dataset."""
    for i in range(0, len(x), size):
        yield i, np.asarray(x[i : i + size])
