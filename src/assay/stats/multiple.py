"""Corrections for testing many hypotheses at once."""

from __future__ import annotations

import numpy as np

def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1)."""
    m = len(pvalues)
    order = np.argsort(pvalues)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * pvalues[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
