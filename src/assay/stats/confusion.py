"""Confusion matrices for many bootstrap resamples at once: one ``bincount`` per chunk."""

from __future__ import annotations

import numpy as np


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, k: int, index: np.ndarray) -> np.ndarray:
    """Confusion matrices ``(b, K, K)`` (rows true, columns predicted) for each resample row of ``index``."""
    b = index.shape[0]
    cells = y_true[index] * k + y_pred[index] + (np.arange(b) * k * k)[:, None]  # (b, n)
    return np.bincount(cells.ravel(), minlength=b * k * k).reshape(b, k, k)
