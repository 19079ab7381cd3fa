"""Loaders for user data: CSV/Parquet tables, NPZ arrays (image folders: ``images.py``).

With ``images.py``, this is the one place that reads users' data files. Every loader validates
what it reads and raises a one-line ``DataError`` naming the file, the
problem and the fix; every loader returns a ``Task`` with seeded, stratified
splits unless the data brings its own, and the count of test rows also in
train or val (``overlap.py``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, did_you_mean, require
from .images import load_image_folder  # noqa: F401 -- the public loaders stay importable from here
from .overlap import with_shared_rows
from .splitting import SPLITS, Fractions, carve_validation, stratified_split
from .tabular import TablePipeline
from .task import Split, Task


# --- tables -------------------------------------------------------------------
def read_table(path: Path):
    """A CSV, TSV or Parquet file as a DataFrame; a binary, empty or unparsable file is a ``DataError`` naming it."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        with open(path, "rb") as f:
            if b"\x00" in f.read(4096):
                raise DataError(f"{path}: not a text table (it holds binary bytes); give a CSV or TSV file, or a .parquet one")
    try:
        if suffix in (".parquet", ".pq"):
            require("pyarrow", "parquet")
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"{path}: cannot read table ({str(error).splitlines()[0]}); check the file's format") from None
    raise DataError(f"{path}: unknown table format '{suffix}'; use .csv, .tsv or .parquet")


def _column(frame, column: str, source: str | Path, role: str) -> None:
    if column not in frame.columns:
        raise DataError(f"{source}: no {role} column '{column}'{did_you_mean(column, map(str, frame.columns))}; columns: {', '.join(map(str, frame.columns))}")


def load_table(
    path: Path | str,
    *,
    label: str,
    groups: Sequence[str] = (),
    meta: Sequence[str] = (),
    features: Sequence[str] | None = None,
    split_column: str | None = None,
    name: str | None = None,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Task:
    """A CSV/Parquet table with a label column as a tabular Task.

    Group columns become the fairness attributes (never features unless
    listed in ``features``); meta columns are kept for slicing and stay features.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path (paths in a study file are relative to it)")
    task = table_task(read_table(path), label=label, groups=groups, meta=meta, features=features, split_column=split_column,
                      name=name or path.stem, fractions=fractions, seed=seed, source=str(path))
    return with_shared_rows(task)


def table_task(
    frame: Any,
    *,
    label: str,
    name: str,
    source: str,
    groups: Sequence[str] = (),
    meta: Sequence[str] = (),
    features: Sequence[str] | None = None,
    split_column: str | None = None,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
    description: str = "",
    info: Mapping[str, Any] | None = None,
) -> Task:
    """A tabular Task from a pandas DataFrame (``load_table`` and the bundled tables use it)."""
    for column, role in [(label, "label"), *((g, "group") for g in groups), *((m, "metadata") for m in meta)] + ([(split_column, "split")] if split_column else []):
        _column(frame, column, source, role)
    dropped = int(frame[label].isna().sum())
    frame = frame[frame[label].notna()].reset_index(drop=True)
    classes = sorted(frame[label].astype(str).unique())
    if len(classes) < 2:
        raise DataError(f"{source}: label column '{label}' has {len(classes)} distinct value; a classifier needs at least two")
    y = np.array([classes.index(v) for v in frame[label].astype(str)], dtype=np.int64)
    reserved = {label, *groups, *([split_column] if split_column else [])}  # metadata may also be features
    columns = list(features) if features is not None else [str(c) for c in frame.columns if c not in reserved]
    for column in columns:
        _column(frame, column, source, "feature")
    if label in columns:
        raise DataError(f"{source}: the label column '{label}' is listed in features; remove it from features (a model given the answer scores 1.000 and learns nothing)")
    _refuse_identifiers(frame, columns, source, chosen=features is None)
    _refuse_infinite(frame, columns, source)
    if split_column:
        values = frame[split_column].astype(str).str.lower()
        bad = sorted(set(values) - set(SPLITS))
        if bad:
            raise DataError(f"{source}: split column '{split_column}' has values {bad[:3]}; use train, val and test")
        parts = {s: np.flatnonzero(values.to_numpy() == s) for s in SPLITS}
        rule = f"column '{split_column}'"
    else:
        train, val, test = stratified_split(y, fractions, seed=seed, source=source)
        parts, rule = {"train": train, "val": val, "test": test}, f"stratified {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%}, seed {seed}"
    pipeline = TablePipeline(columns).fit(frame.iloc[parts["train"]])
    x = pipeline.transform(frame)
    pipeline.remember(frame, x)  # a model fitted on raw rows gets these rows back, not float32 decodings of them

    def split(idx: np.ndarray) -> Split:
        return Split(
            x[idx], y[idx],
            groups={g: frame[g].iloc[idx].astype(str).to_numpy() for g in groups},
            meta={m: frame[m].iloc[idx].to_numpy() for m in meta},
        )

    return Task(
        name=name,
        modality="tabular",
        class_names=tuple(classes),
        **{s: split(idx) for s, idx in parts.items()},
        description=description or f"Rows of {Path(source).name}: predict '{label}'.",
        info={"source": source, "split rule": rule, "rows dropped (missing label)": dropped, "features": pipeline.describe(),
              "missing_fill": pipeline.missing_fill(), **(info or {})},
        pipeline=pipeline,
        origin="table",
    )


# A text column with more distinct values than this share of its rows, and more than
# this many, names rows rather than describing them (an ID, a timestamp, free text).
_ID_SHARE, _ID_LEVELS = 0.5, 50


def _refuse_identifiers(frame: Any, columns: Sequence[str], source: str, *, chosen: bool) -> None:
    """Refuse a feature column that identifies rows: one-hot of an ID memorises, and 10,000 levels make 10,000 columns."""
    import pandas as pd

    n = len(frame)
    for column in columns:
        values = frame[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        levels = int(values.nunique(dropna=True))
        if not numeric and levels > _ID_LEVELS and levels > _ID_SHARE * n:
            raise DataError(f"{source}: column '{column}' has {levels:,} distinct values in {n:,} rows, like an identifier; "
                            f"leave it out (list features = [...] without it) or encode it as numbers")
        if numeric and chosen and n > _ID_LEVELS and levels == n and pd.api.types.is_integer_dtype(values):
            ordered = np.sort(values.to_numpy())
            if ordered[-1] - ordered[0] == n - 1:  # 0..N-1 or 1..N: a saved row index
                raise DataError(f"{source}: column '{column}' numbers the rows ({ordered[0]}..{ordered[-1]}), like a saved index; "
                                f"leave it out (list features = [...] without it, or save the table with index=False)")


def _refuse_infinite(frame: Any, columns: Sequence[str], source: str) -> None:
    """An infinite cell cannot be standardised; empty cells (NaN) are filled with the training median instead."""
    import pandas as pd

    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            bad = np.flatnonzero(np.isinf(values.to_numpy(dtype=float)))
            if len(bad):
                raise DataError(f"{source}: column '{column}' holds infinite values in {len(bad)} row(s) (first: row {int(bad[0])}); "
                                "replace them, or empty those cells to have them filled with the training median")


# --- arrays -------------------------------------------------------------------
# The checks every array loader makes (load_npz here, Task.from_arrays in in_memory.py), one message each.
def refuse_non_finite_array(x: np.ndarray, key: str, source: str) -> None:
    """Refuse NaN or infinite inputs in array ``key`` (e.g. ``x_test``), naming the first bad row."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise DataError(f"{source}: {key} holds NaN or infinite values in {len(rows)} row(s) (first: row {int(rows[0])}); replace or drop those rows")


def check_split_arrays(x_all: Mapping[str, np.ndarray | None], y_all: Mapping[str, np.ndarray | None], source: str) -> None:
    """Refuse splits whose inputs and labels do not fit: one without the other, wrong dimensions, lengths, dtypes or shapes.

    ``x_all`` and ``y_all`` map a split name (``train``, ``val``, ``test``, or
    ``all`` for one unsplit pair) to its array, ``None`` where not given.
    """
    for s in x_all:
        x, y = x_all[s], y_all[s]
        if (x is None) != (y is None):
            missing = f"y_{s}" if y is None else f"x_{s}"
            raise DataError(f"{source}: has {'x' if y is None else 'y'}_{s} but no {missing}; give both or neither")
        if x is None:
            continue
        xs, ys = ("x", "y") if s == "all" else (f"x_{s}", f"y_{s}")
        if x.ndim < 2 or y.ndim != 1:
            raise DataError(f"{source}: {xs} has shape {x.shape} and {ys} {y.shape}; give {xs} as (N, ...) inputs and {ys} as (N,) labels")
        if len(x) != len(y):
            raise DataError(f"{source}: {xs} has {len(x)} rows but {ys} has {len(y)}; give one label per row")
        if x.dtype.kind not in "fiub":
            raise DataError(f"{source}: {xs} holds {x.dtype} values; give numbers")
    shapes = {s: x.shape[1:] for s, x in x_all.items() if x is not None}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{source}: splits differ in input shape ({', '.join(f'x_{s} {v}' for s, v in shapes.items())}); every split needs the same shape")


def refuse_one_class(n_values: int, key: str, source: str) -> None:
    """A classifier needs two classes: refuse labels ``key`` with fewer distinct values."""
    if n_values < 2:
        raise DataError(f"{source}: {key} has {n_values} distinct value; a classifier needs at least two")


def array_modality(x: np.ndarray, modality: str | None, source: str) -> str:
    """The modality asked for, or the one ``x``'s dimensions imply: (N, D) tabular, (N, C, L) signal, (N, C, H, W) image."""
    kind = modality or {2: "tabular", 3: "signal", 4: "image"}.get(x.ndim)
    if kind is None:
        raise DataError(f"{source}: x has {x.ndim} dimensions; use (N, D) tables, (N, C, L) signals or (N, C, H, W) images")
    return kind


def as_inputs(x: np.ndarray, kind: str) -> np.ndarray:
    """Float32 inputs of modality ``kind``; a signal given as (N, L) gets its channel axis."""
    x = x.astype(np.float32)
    return x[:, None] if kind == "signal" and x.ndim == 2 else x  # (N, L) -> (N, 1, L)


def load_npz(
    path: Path | str,
    *,
    name: str | None = None,
    modality: str | None = None,
    class_names: Sequence[str] | None = None,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Task:
    """Arrays ``x``, ``y`` (or ``x_train``, ``y_train``, ... ``x_test``, ``y_test``) from an NPZ file; never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path (paths in a study file are relative to it)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot read arrays ({str(error).splitlines()[0]}); save them with numpy.savez, without object arrays") from None
    for key, array in arrays.items():
        if key.startswith("x"):
            refuse_non_finite_array(array, key, str(path))
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        x_all = {s: arrays.get(f"x_{s}") for s in SPLITS}
        y_all = {s: arrays.get(f"y_{s}") for s in SPLITS}
    elif {"x", "y"} <= set(arrays):
        x_all, y_all = {"all": arrays["x"]}, {"all": arrays["y"]}
    else:
        raise DataError(f"{path}: holds {sorted(arrays)}; it needs arrays x and y, or x_train, y_train, x_test, y_test")
    check_split_arrays(x_all, y_all, str(path))
    labels = np.concatenate([v for v in y_all.values() if v is not None])
    values = sorted(np.unique(labels).tolist())
    names = tuple(class_names) if class_names else tuple(str(v) for v in values)
    if len(names) != len(values):
        raise DataError(f"{path}: {len(values)} label values but {len(names)} class_names; give one name per value")
    refuse_one_class(len(values), "y", str(path))
    lookup = {v: i for i, v in enumerate(values)}
    kind = array_modality(next(v for v in x_all.values() if v is not None), modality, str(path))

    def encode(y: np.ndarray) -> np.ndarray:
        return np.array([lookup[v] for v in y.tolist()], dtype=np.int64)

    if "all" in x_all:
        x, y = as_inputs(x_all["all"], kind), encode(y_all["all"])
        train, val, test = stratified_split(y, fractions, seed=seed, source=str(path))
        splits, rule = {"train": Split(x[train], y[train]), "val": Split(x[val], y[val]), "test": Split(x[test], y[test])}, f"stratified, seed {seed}"
    else:
        x, y = as_inputs(x_all["train"], kind), encode(y_all["train"])
        if x_all["val"] is None:
            train, val, rule = carve_validation(y, seed=seed, source=str(path))
            splits = {"train": Split(x[train], y[train]), "val": Split(x[val], y[val])}
        else:
            splits, rule = {"train": Split(x, y), "val": Split(as_inputs(x_all["val"], kind), encode(y_all["val"]))}, "given train/val/test"
        splits["test"] = Split(as_inputs(x_all["test"], kind), encode(y_all["test"]))
    task = Task(name=name or path.stem, modality=kind, class_names=names, **splits, info={"source": str(path), "split rule": rule}, origin="npz")
    return with_shared_rows(task)
