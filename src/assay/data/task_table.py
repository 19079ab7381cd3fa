"""A study file's ``[task]`` table as a Task: the data it names, then the transforms it asks for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError, SpecError
from .task import Task
from .transforms import TRANSFORMS, TransformContext, apply_transforms, transforms_in


def load_task(table: Mapping[str, Any], *, base_dir: Path, seed: int, where: str = "[task]") -> Task:
    """The Task a ``[task]`` table describes: a builtin name or a data path, then its transforms.

    Keys that name a registered transform (``holdout_classes``, ``ood``,
    ``labels_per_class`` ...; ``data/transforms.py``) are checked before any
    data is read and applied in their declared order; every other key is an
    option of the loader.

    Raises:
        SpecError, DataError: one line naming the key and the fix.
    """
    from .builtin import load_builtin

    transforms = transforms_in(table, where)  # bad values refused before any file is read
    source = {k: v for k, v in table.items() if k not in TRANSFORMS}
    if "builtin" in source:
        options = {k: v for k, v in source.items() if k != "builtin"}
        task = load_builtin(source["builtin"], seed=seed, where=where, **options)  # options checked against the loader's signature
    else:
        task = load_source(source, base_dir=base_dir, seed=seed, where=where)
    return apply_transforms(task, transforms, TransformContext(seed=seed, base_dir=Path(base_dir), where=where))


def load_source(spec: Mapping[str, Any], *, base_dir: Path, seed: int, where: str = "study.toml [task]") -> Task:
    """The Task a study file's ``[task]`` table names by ``path`` (relative to the study file).

    The table's options are checked against the loader's signature (names,
    types, ranges) before any file is read.
    """
    from .._options import check_options
    from .images import load_image_folder
    from .sources import load_npz, load_table

    if "in_memory" in spec:
        raise SpecError(f"{where}: in_memory = {spec['in_memory']!r}: this study's data was given in code (assay.judge or Study(task=...)); "
                        "run it from Python with the same Task, or name a builtin or a path instead")
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
