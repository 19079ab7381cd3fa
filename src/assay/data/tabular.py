"""TablePipeline: turn table rows into float features, fitted on train only.

Numeric columns: median imputation, then standardisation with the train mean
and standard deviation. Other columns: one-hot of the train categories plus
one column for anything unseen or missing. The fitted pipeline is kept with
the task so new rows (serving, drift) go through exactly the same steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class TablePipeline:
    """Feature encoding fitted on the training rows.

    Args:
        columns: the feature columns, in order.
    """

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.numeric: list[str] = []
        self.categorical: dict[str, list[str]] = {}
        self.median: dict[str, float] = {}
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}

    def fit(self, frame: Any) -> TablePipeline:
        """Learn imputation, scaling and categories from ``frame`` (a pandas DataFrame of train rows)."""
        import pandas as pd

        for column in self.columns:
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                filled = values.astype(float).fillna(values.median() if values.notna().any() else 0.0)
                self.numeric.append(column)
                self.median[column] = float(values.median()) if values.notna().any() else 0.0
                self.mean[column] = float(filled.mean())
                std = float(filled.std(ddof=0))
                self.std[column] = std if std > 0 else 1.0
            else:
                self.categorical[column] = sorted(values.dropna().astype(str).unique().tolist())
        return self

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) + 1 for c in self.categorical.values())

    def feature_names(self) -> list[str]:
        names = list(self.numeric)
        for column, categories in self.categorical.items():
            names += [f"{column}={c}" for c in categories] + [f"{column}=<other>"]
        return names

    def transform(self, frame: Any) -> np.ndarray:
        """Float32 features ``(N, width)`` for rows of ``frame``."""
        parts = []
        for column in self.numeric:
            values = frame[column].astype(float).fillna(self.median[column]).to_numpy()
            parts.append(((values - self.mean[column]) / self.std[column])[:, None])
        for column, categories in self.categorical.items():
            values = frame[column].astype("string").fillna("\x00").to_numpy()
            onehot = np.zeros((len(frame), len(categories) + 1), dtype=np.float32)
            index = {c: i for i, c in enumerate(categories)}
            for row, value in enumerate(values):
                onehot[row, index.get(value, len(categories))] = 1.0
            parts.append(onehot)
        return np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((len(frame), 0), np.float32)

    def missing_fill(self) -> list[float]:
        """What a missing value becomes in feature space (used by the missing-values corruption)."""
        fill = [(self.median[c] - self.mean[c]) / self.std[c] for c in self.numeric]
        for categories in self.categorical.values():
            fill += [0.0] * len(categories) + [1.0]
        return fill

    def describe(self) -> dict[str, Any]:
        return {"numeric": len(self.numeric), "categorical": len(self.categorical), "encoded_width": self.width,
                "rule": "numeric: train-median imputation + train standardisation; categorical: one-hot of train categories + other"}
