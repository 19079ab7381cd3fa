"""Loaders for user data: image folders, CSV/Parquet tables, NPZ arrays.

This is the one place that reads users' data files. Every loader validates
what it reads and raises a one-line ``DataError`` naming the file, the
problem and the fix; every loader returns a ``Task`` with seeded, stratified
splits unless the data brings its own.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, SpecError, did_you_mean, require
from .lazy import LazyImages
from .memory import available_bytes, budget_bytes, size_text
from .splitting import stratified_split
from .tabular import TablePipeline
from .task import Split, Task

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLITS = ("train", "val", "test")
Fractions = tuple[float, float, float]


# --- image folders -----------------------------------------------------------
def _class_folders(root: Path) -> dict[str, list[Path]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders found; put images in {root}/<class name>/*.png")
    out = {}
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)}); add images or remove the folder")
        out[folder.name] = files
    return out


_BANDS = {"1": 1, "L": 1, "P": 1, "I": 4, "I;16": 2, "F": 4, "LA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "CMYK": 4}


def _image_header(path: Path) -> tuple[tuple[int, int], str]:
    """``((W, H), mode)`` from the file's header alone, refusing an image too large to decode here."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own estimate below replaces PIL's warning
            with Image.open(path) as img:
                size, mode = img.size, img.mode
    except Image.DecompressionBombError as error:  # PIL's own limit: the header claims far more pixels than is sane
        numbers = [int(n) for n in re.findall(r"\d+", str(error))]
        claimed = f"{numbers[0]:,}" if numbers else "too many"
        raise DataError(f"{path}: image header claims {claimed} pixels, too many to decode; remove the file or shrink the image") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        reason = str(error).split("\n")[0] or type(error).__name__
        raise DataError(f"{path}: cannot read image ({reason}); remove or replace it") from None
    need = size[0] * size[1] * max(_BANDS.get(mode, 4), 1) * 2  # the decoded image and one converted copy
    if need > budget_bytes():
        raise DataError(f"{path}: image header claims {size[0]}x{size[1]} pixels, about {size_text(need)} to decode "
                        f"(this machine has {size_text(available_bytes())} available); remove the file or shrink the image")
    return size, mode


def _read_image(path: Path, mode: str | None):
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # its size was estimated from the header already
            img = Image.open(path)
        with img:
            img.load()  # decode fully: a truncated file fails here, not later
            return img.convert(mode) if mode else img.copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = str(error).split("\n")[0] or type(error).__name__
        raise DataError(f"{path}: cannot read image ({reason}); remove or replace it") from None


def load_image_folder(
    root: Path | str,
    *,
    name: str | None = None,
    size: tuple[int, int] | None = None,
    grayscale: bool | None = None,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
    lazy: bool = False,
) -> Task:
    """Images in ``root/<class>/`` (or ``root/{train,val,test}/<class>/``) as a Task.

    Args:
        size: ``(H, W)`` to resize every image to (bilinear); required when sizes differ.
        grayscale: force one channel (default: grey when every image is).
        fractions: train/val/test shares when the folder has no split sub-folders.
        lazy: keep file paths, not pixels; evaluation decodes batch by batch.

    Raises:
        DataError: missing folder, empty class, unreadable image (named), mixed sizes without ``size``.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found; check the path (paths in a study file are relative to it)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give a folder of class sub-folders")
    given = [s for s in SPLITS if (root / s).is_dir()]
    layout = {s: _class_folders(root / s) for s in given} if "train" in given else {"all": _class_folders(root)}
    classes = sorted(layout.get("train", layout.get("all", {})))
    for split, folders in layout.items():
        extra = sorted(set(folders) - set(classes))
        if extra:
            raise DataError(f"{root / split}: class folder(s) {extra} are not in train; every class needs training images")
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder ({', '.join(classes)}); a classifier needs at least two")

    files = [(split, c, f) for split, folders in layout.items() for c, fs in folders.items() for f in fs]
    # Headers first (no pixels decoded): sizes, modes and the memory the task will take,
    # so an image or a size too large is refused from an estimate instead of the process being killed.
    headers = [_image_header(f) for _, _, f in files]
    sizes = [h[0] for h in headers]
    grey = all(h[1] in ("L", "1", "I", "I;16", "LA") for h in headers)
    mode = "L" if (grey if grayscale is None else grayscale) else "RGB"
    if size is None and len(set(sizes)) > 1:
        b = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise DataError(
            f"{root}: images differ in size ({files[0][2].name} is {sizes[0][0]}x{sizes[0][1]}, "
            f"{files[b][2].name} is {sizes[b][0]}x{sizes[b][1]}); set size = [H, W] in [task] to resize them all"
        )
    target = (int(size[1]), int(size[0])) if size is not None else sizes[0]  # PIL wants (W, H)
    channels = 1 if mode == "L" else 3
    need = len(files) * channels * target[0] * target[1] * 4 * 2  # float32 pixels, and the copy training makes
    if not lazy:
        need += sum(w * h * _BANDS.get(m, 4) for (w, h), m in headers)  # decoded images held while stacking
    if need > budget_bytes():
        raise DataError(f"{root}: {len(files)} images at {target[1]}x{target[0]} need about {size_text(need)} in memory "
                        f"(this machine has {size_text(available_bytes())} available); set a smaller size = [H, W] in [task]")
    # Every file is decoded once now, so a broken one is named before anything trains;
    # a lazy task keeps only the file list and decodes again batch by batch.
    images = []
    for _, _, f in files:
        img = _read_image(f, None)
        if not lazy:
            images.append(img)
    if lazy:
        x = LazyImages([f for _, _, f in files], mode, target)
    else:
        from PIL import Image

        pixels = np.stack([np.asarray(img.convert(mode).resize(target, Image.BILINEAR) if img.size != target else img.convert(mode), dtype=np.float32) for img in images])
        x = (pixels / 255.0).reshape(len(images), target[1], target[0], -1).transpose(0, 3, 1, 2)  # (N, C, H, W)
    y = np.array([classes.index(c) for _, c, _ in files], dtype=np.int64)
    split_of = np.array([s for s, _, _ in files])
    parts, rule = _image_splits(split_of, y, fractions, seed, str(root))
    whole = Split(x, y)
    return Task(
        name=name or root.name,
        modality="image",
        class_names=tuple(classes),
        **{s: whole.subset(idx) if lazy else Split(np.ascontiguousarray(x[idx]), y[idx]) for s, idx in parts.items()},
        description=f"Images from {root.name}/ ({len(classes)} classes).",
        info={"source": str(root), "split rule": rule, "resize": f"bilinear to {target[1]}x{target[0]}" if size is not None else "none (all one size)",
              "channels": "grey" if mode == "L" else "RGB", "loading": "lazy (decoded batch by batch)" if lazy else "in memory"},
        origin="image_folder",
    )


def _image_splits(split_of: np.ndarray, y: np.ndarray, fractions: Fractions, seed: int, source: str) -> tuple[dict[str, np.ndarray], str]:
    if "all" in split_of:
        train, val, test = stratified_split(y, fractions, seed=seed, source=source)
        return {"train": train, "val": val, "test": test}, f"stratified {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%}, seed {seed}"
    parts = {s: np.flatnonzero(split_of == s) for s in SPLITS}
    missing = [s for s in ("val", "test") if len(parts[s]) == 0]
    if missing:
        share = 0.15 if len(missing) == 1 else 0.3
        inner = (1 - share, share, 0.0) if len(missing) == 1 else (0.7, 0.15, 0.15)
        train, a, b = stratified_split(y[parts["train"]], inner, seed=seed, source=source)
        carved = [parts["train"][a]] if len(missing) == 1 else [parts["train"][a], parts["train"][b]]
        parts["train"] = parts["train"][train]
        for s, idx in zip(missing, carved):
            parts[s] = idx
        return parts, f"folders train/ val/ test/; {' and '.join(missing)} carved from train/ (stratified, seed {seed})"
    return parts, "folders train/ val/ test/"


# --- tables -------------------------------------------------------------------
def _read_table(path: Path):
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
    return table_task(_read_table(path), label=label, groups=groups, meta=meta, features=features, split_column=split_column,
                      name=name or path.stem, fractions=fractions, seed=seed, source=str(path))


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
        if key.startswith("x") and array.dtype.kind == "f" and not np.isfinite(array).all():
            rows = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
            raise DataError(f"{path}: {key} holds NaN or infinite values in {len(rows)} row(s) (first: row {int(rows[0])}); replace or drop those rows")
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        x_all = {s: arrays.get(f"x_{s}") for s in SPLITS}
        y_all = {s: arrays.get(f"y_{s}") for s in SPLITS}
    elif {"x", "y"} <= set(arrays):
        x_all, y_all = {"all": arrays["x"]}, {"all": arrays["y"]}
    else:
        raise DataError(f"{path}: holds {sorted(arrays)}; it needs arrays x and y, or x_train, y_train, x_test, y_test")
    for s in x_all:
        x, y = x_all[s], y_all[s]
        if (x is None) != (y is None):
            missing = f"y_{s}" if y is None else f"x_{s}"
            raise DataError(f"{path}: has {'x' if y is None else 'y'}_{s} but no {missing}; give both or neither")
        if x is None:
            continue
        xs, ys = ("x", "y") if s == "all" else (f"x_{s}", f"y_{s}")
        if x.ndim < 2 or y.ndim != 1:
            raise DataError(f"{path}: {xs} has shape {x.shape} and {ys} {y.shape}; give {xs} as (N, ...) inputs and {ys} as (N,) labels")
        if len(x) != len(y):
            raise DataError(f"{path}: {xs} has {len(x)} rows but {ys} has {len(y)}; give one label per row")
        if x.dtype.kind not in "fiub":
            raise DataError(f"{path}: {xs} holds {x.dtype} values; give numbers")
    shapes = {s: x.shape[1:] for s, x in x_all.items() if x is not None}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{path}: splits differ in input shape ({', '.join(f'x_{s} {v}' for s, v in shapes.items())}); every split needs the same shape")
    labels = np.concatenate([v for v in y_all.values() if v is not None])
    values = sorted(np.unique(labels).tolist())
    names = tuple(class_names) if class_names else tuple(str(v) for v in values)
    if len(names) != len(values):
        raise DataError(f"{path}: {len(values)} label values but {len(names)} class_names; give one name per value")
    if len(values) < 2:
        raise DataError(f"{path}: y has {len(values)} distinct value; a classifier needs at least two")
    lookup = {v: i for i, v in enumerate(values)}
    first = next(v for v in x_all.values() if v is not None)
    kind = modality or {2: "tabular", 3: "signal", 4: "image"}.get(first.ndim)
    if kind is None:
        raise DataError(f"{path}: x has {first.ndim} dimensions; use (N, D) tables, (N, C, L) signals or (N, C, H, W) images")

    def prepare(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        return x[:, None] if kind == "signal" and x.ndim == 2 else x  # (N, L) -> (N, 1, L)

    def encode(y: np.ndarray) -> np.ndarray:
        return np.array([lookup[v] for v in y.tolist()], dtype=np.int64)

    if "all" in x_all:
        x, y = prepare(x_all["all"]), encode(y_all["all"])
        train, val, test = stratified_split(y, fractions, seed=seed, source=str(path))
        splits, rule = {"train": Split(x[train], y[train]), "val": Split(x[val], y[val]), "test": Split(x[test], y[test])}, f"stratified, seed {seed}"
    else:
        x, y = prepare(x_all["train"]), encode(y_all["train"])
        if x_all["val"] is None:
            train, val, _ = stratified_split(y, (0.85, 0.15, 0.0), seed=seed, source=str(path))
            splits, rule = {"train": Split(x[train], y[train]), "val": Split(x[val], y[val])}, f"given train/test; val is 15% of train (stratified, seed {seed})"
        else:
            splits, rule = {"train": Split(x, y), "val": Split(prepare(x_all["val"]), encode(y_all["val"]))}, "given train/val/test"
        splits["test"] = Split(prepare(x_all["test"]), encode(y_all["test"]))
    return Task(name=name or path.stem, modality=kind, class_names=names, **splits, info={"source": str(path), "split rule": rule}, origin="npz")


# --- the [task] table ---------------------------------------------------------
def load_source(spec: Mapping[str, Any], *, base_dir: Path, seed: int, where: str = "study.toml [task]") -> Task:
    """The Task a study file's ``[task]`` table names by ``path`` (relative to the study file).

    The table's options are checked against the loader's signature (names,
    types, ranges) before any file is read.
    """
    from .._options import check_options

    if "path" not in spec:
        raise SpecError(f"{where}: needs builtin = \"digits\" (or another bundled task) or path = \"your data\"")
    if not isinstance(spec["path"], str) or not spec["path"]:
        raise SpecError(f"{where}: 'path' must be a string naming a file or folder, got {spec['path']!r}")
    path = Path(spec["path"])
    path = path if path.is_absolute() else Path(base_dir) / path
    if not path.exists():
        raise DataError(f"{path}: not found; check the path (paths in a study file are relative to the study file)")
    fmt = spec.get("format") or ("image_folder" if path.is_dir() else {".npz": "npz"}.get(path.suffix.lower(), "table"))
    fmt = {"csv": "table", "parquet": "table"}.get(fmt, fmt) if isinstance(fmt, str) else fmt
    loaders = {"image_folder": load_image_folder, "table": load_table, "npz": load_npz}
    if fmt not in loaders:
        raise SpecError(f"{where}: unknown format {spec['format']!r}; use image_folder, csv, parquet or npz")
    options = {k: v for k, v in spec.items() if k not in ("path", "format")}
    loader = loaders[fmt]
    check_options(loader, options, f"{where} ({fmt} data)", skip=("root", "path", "seed"))
    if "fractions" in options:
        options["fractions"] = tuple(options["fractions"])
    if fmt == "table" and "label" not in options:
        raise SpecError(f"{where}: tables need label = \"<column>\" naming the class column")
    return loader(path, seed=seed, **options)
