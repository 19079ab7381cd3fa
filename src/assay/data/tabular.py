"""TablePipeline: turn table rows into float features, fitted on train only.

Numeric columns: median imputation, then standardisation with the train mean
and standard deviation. Other columns: one-hot of the train categories plus
one column for anything unseen or missing. The fitted pipeline is kept with
the task so new rows (serving, drift) go through exactly the same steps.

The rows a task was built from are remembered (``remember``), keyed by the
bytes of their float32 encoding, so ``inverse`` gives a model fitted on raw
rows exactly those rows: decoding float32 features moves a value such as 0.45
to 0.45000003, enough to cross a tree's threshold. Only rows never seen (a
corrupted view's) are decoded. The memory is a cache of this process: it is
not pickled, and a pipeline without it decodes every row.
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
        self.integer: set[str] = set()  # numeric columns whose train values were all whole numbers
        self.dtypes: dict[str, Any] = {}  # each column's dtype, restored by ``inverse``
        self.originals: dict[str, dict[str, Any]] = {}  # category text -> the value it came from (True, 3, "a")
        self._seen: tuple[np.ndarray, np.ndarray, Any] | None = None  # (sorted row keys, their row numbers, raw rows)

    def fit(self, frame: Any) -> TablePipeline:
        """Learn imputation, scaling and categories from ``frame`` (a pandas DataFrame of train rows)."""
        import pandas as pd

        for column in self.columns:
            values = frame[column]
            self.dtypes[column] = values.dtype
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                present = values.dropna().to_numpy(dtype=float)
                if len(present) and np.all(present == np.round(present)):
                    self.integer.add(column)
                filled = values.astype(float).fillna(values.median() if values.notna().any() else 0.0)
                self.numeric.append(column)
                self.median[column] = float(values.median()) if values.notna().any() else 0.0
                self.mean[column] = float(filled.mean())
                std = float(filled.std(ddof=0))
                self.std[column] = std if std > 0 else 1.0
            else:
                present = values.dropna()
                self.categorical[column] = sorted(present.astype(str).unique().tolist())
                self.originals[column] = dict(zip(present.astype(str), present))
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

    def remember(self, frame: Any, x: np.ndarray) -> None:
        """Keep the raw rows of ``frame`` that ``x`` (their ``transform``) encodes, for ``inverse`` to return as they are.

        Costs one copy of the feature columns and of ``x``, plus one row number
        per row; two rows with the same encoding keep the first.
        """
        if len(frame) != len(x):
            raise ValueError(f"TablePipeline.remember: {len(frame)} rows but {len(x)} encoded rows; give each row's encoding")
        if not self.width:  # no features: nothing to key rows by
            return
        keys = _row_keys(x)
        order = np.argsort(keys, kind="stable")
        self._seen = (keys[order], order, frame[self.columns].reset_index(drop=True).copy())

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_seen": None}  # remembered rows stay in this process: a saved pipeline decodes

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_seen": None, **state})

    def inverse(self, x: np.ndarray) -> Any:
        """The rows that encode to ``x``, as a pandas DataFrame of the original columns in their original order.

        A row ``remember`` was given comes back exactly as it was. Any other
        row is decoded: numeric columns come back as ``x * std + mean`` (rounded for columns
        whose train values were all whole numbers), categorical ones as the
        category of the largest one-hot entry, and the ``<other>`` column as a
        missing value. A value that was missing and imputed comes back as the
        train median, not as missing; float32 features keep about seven
        significant digits. Column dtypes are restored where the values allow
        (an integer or boolean column with missing values stays float or object).
        """
        import pandas as pd

        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"TablePipeline.inverse: features of shape {x.shape}; expected (N, {self.width})")
        if self._seen is None or x.dtype != np.float32 or not len(x):  # only the task's own float32 encodings can match
            return self._decode(x)
        keys, rows, raw = self._seen
        wanted = _row_keys(x)
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = keys[at] == wanted
        if found.all():
            return raw.iloc[rows[at]].reset_index(drop=True)
        if not found.any():
            return self._decode(x)
        # (N,) positions: remembered rows first, decoded ones after, then put back in the order asked
        parts = pd.concat([raw.iloc[rows[at[found]]], self._decode(x[~found])], ignore_index=True)
        position = np.concatenate([np.flatnonzero(found), np.flatnonzero(~found)])
        return parts.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)

    def _decode(self, x: np.ndarray) -> Any:
        """``x`` decoded column by column, as ``inverse`` describes."""
        import pandas as pd

        x = np.asarray(x, dtype=np.float64)
        decoded: dict[str, Any] = {}
        for i, column in enumerate(self.numeric):
            values = x[:, i] * self.std[column] + self.mean[column]
            decoded[column] = np.round(values) if column in self.integer else values
        start = len(self.numeric)
        for column, categories in self.categorical.items():
            block = x[:, start : start + len(categories) + 1]
            start += len(categories) + 1
            lookup = [self.originals[column][c] for c in categories] + [np.nan]  # the last column is <other>
            decoded[column] = np.array([lookup[i] for i in block.argmax(axis=1)], dtype=object)
        frame = pd.DataFrame({column: decoded[column] for column in self.columns})
        for column in self.columns:
            frame[column] = _restore_dtype(frame[column], self.dtypes.get(column))
        return frame

    def missing_fill(self) -> list[float]:
        """What a missing value becomes in feature space (used by the missing-values corruption)."""
        fill = [(self.median[c] - self.mean[c]) / self.std[c] for c in self.numeric]
        for categories in self.categorical.values():
            fill += [0.0] * len(categories) + [1.0]
        return fill

    def describe(self) -> dict[str, Any]:
        return {"numeric": len(self.numeric), "categorical": len(self.categorical), "encoded_width": self.width,
                "rule": "numeric: train-median imputation + train standardisation; categorical: one-hot of train categories + other"}


def _row_keys(x: np.ndarray) -> np.ndarray:
    """One comparable key per row of ``x``: the bytes of its float32 values, as a numpy void scalar."""
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)  # (N, D)
    return rows.view(np.dtype((np.void, rows.shape[1] * 4))).ravel()


def _restore_dtype(values: Any, dtype: Any) -> Any:
    """``values`` cast back to the column's original ``dtype`` where no value is lost (no NaN into int or bool)."""
    import pandas as pd

    if dtype is None or values.dtype == dtype:
        return values
    if values.isna().any() and isinstance(dtype, np.dtype) and dtype.kind in "biu":
        return values if values.dtype.kind == "f" else values.infer_objects()
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values.infer_objects()
