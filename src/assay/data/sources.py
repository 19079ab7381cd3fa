"""Loaders for user data: image folders, CSV/Parquet tables, NPZ arrays.

This is the one place that reads users' data files. Every loader validates
what it reads and raises a one-line ``DataError`` naming the file, the
problem and the fix; every loader returns a ``Task`` with seeded, stratified
splits unless the data brings its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, SpecError, did_you_mean, require
from .lazy import LazyImages
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


def _read_image(path: Path, mode: str | None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode fully: a truncated file fails here, not later
            return img.convert(mode) if mode else img.copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        reason = str(error).split("\n")[0] or type(error).__name__
        raise DataError(f"{path}: cannot read image ({reason}); remove or replace it") from None


def load_image_folder(
    root: Path | str,
    *,
    name: str | None = None,
    size: Sequence[int] | None = None,
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
    # Every file is decoded once now, so a broken one is named before anything trains;
    # a lazy task keeps only the file list and decodes again batch by batch.
    images, sizes, grey = [], [], True
    for _, _, f in files:
        img = _read_image(f, None)
        sizes.append(img.size)
        grey = grey and img.mode in ("L", "1", "I", "I;16", "LA")
        if not lazy:
            images.append(img)
    mode = "L" if (grey if grayscale is None else grayscale) else "RGB"
    if size is None and len(set(sizes)) > 1:
        b = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise DataError(
            f"{root}: images differ in size ({files[0][2].name} is {sizes[0][0]}x{sizes[0][1]}, "
            f"{files[b][2].name} is {sizes[b][0]}x{sizes[b][1]}); set size = [H, W] in [task] to resize them all"
        )
    target = (int(size[1]), int(size[0])) if size is not None else sizes[0]  # PIL wants (W, H)
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
        raise DataError(f"{source}: no {role} column '{column}'{did_you_mean(column, map(str, frame.columns))}; columns: {', '.join(map(str, frame.columns[:12]))}")


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
    )


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
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: cannot read arrays ({str(error).splitlines()[0]}); save them with numpy.savez, without object arrays") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        x_all = {s: arrays.get(f"x_{s}") for s in SPLITS}
        y_all = {s: arrays.get(f"y_{s}") for s in SPLITS}
    elif {"x", "y"} <= set(arrays):
        x_all, y_all = {"all": arrays["x"]}, {"all": arrays["y"]}
    else:
        raise DataError(f"{path}: holds {sorted(arrays)}; it needs arrays x and y, or x_train, y_train, x_test, y_test")
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
    return Task(name=name or path.stem, modality=kind, class_names=names, **splits, info={"source": str(path), "split rule": rule})


# --- the [task] table ---------------------------------------------------------
_OPTIONS = {
    "image_folder": ("name", "size", "grayscale", "fractions", "lazy"),
    "table": ("label", "groups", "meta", "features", "split_column", "name", "fractions"),
    "npz": ("name", "modality", "class_names", "fractions"),
}


def load_source(spec: Mapping[str, Any], *, base_dir: Path, seed: int, where: str = "study.toml [task]") -> Task:
    """The Task a study file's ``[task]`` table names by ``path`` (relative to the study file)."""
    if "path" not in spec:
        raise SpecError(f"{where}: needs builtin = \"digits\" (or another bundled task) or path = \"your data\"")
    path = Path(spec["path"])
    path = path if path.is_absolute() else Path(base_dir) / path
    fmt = spec.get("format") or ("image_folder" if path.is_dir() else {".npz": "npz"}.get(path.suffix.lower(), "table"))
    fmt = {"csv": "table", "parquet": "table"}.get(fmt, fmt)
    if fmt not in _OPTIONS:
        raise SpecError(f"{where}: unknown format '{spec['format']}'; use image_folder, csv, parquet or npz")
    options = {k: v for k, v in spec.items() if k not in ("path", "format")}
    allowed = _OPTIONS[fmt]
    for key in options:
        if key not in allowed:
            raise SpecError(f"{where}: unknown key '{key}' for {fmt} data{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    if "fractions" in options:
        options["fractions"] = tuple(options["fractions"])
    if fmt == "table" and "label" not in options:
        raise SpecError(f"{where}: tables need label = \"<column>\" naming the class column")
    loader = {"image_folder": load_image_folder, "table": load_table, "npz": load_npz}[fmt]
    return loader(path, seed=seed, **options)
