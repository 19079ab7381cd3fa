"""A study file's ``[task]`` table as a Task: the data it names, then the transforms it asks for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    from .sources import load_source

    transforms = transforms_in(table, where)  # bad values refused before any file is read
    source = {k: v for k, v in table.items() if k not in TRANSFORMS}
    if "builtin" in source:
        options = {k: v for k, v in source.items() if k != "builtin"}
        task = load_builtin(source["builtin"], seed=seed, where=where, **options)  # options checked against the loader's signature
    else:
        task = load_source(source, base_dir=base_dir, seed=seed, where=where)
    return apply_transforms(task, transforms, TransformContext(seed=seed, base_dir=Path(base_dir), where=where))
