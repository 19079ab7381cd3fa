"""Bundled tasks: real data that ships with installed packages, no download."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import DataError, did_you_mean
from .splitting import stratified_split
from .task import Split, Task

BUILTINS: dict[str, Callable[..., Task]] = {}


def _builtin(fn: Callable[..., Task]) -> Callable[..., Task]:
    BUILTINS[fn.__name__] = fn
    return fn


@_builtin
def digits(*, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Task:
    """scikit-learn's 1,797 handwritten digits, 8x8 grey images (UCI optdigits test set).

    Pixel values 0..16 are scaled to [0, 1]; the split is stratified and seeded.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train, val, test = stratified_split(y, fractions, seed=seed, source="digits")
    return Task(
        name="digits",
        modality="image",
        class_names=tuple(str(c) for c in bunch.target_names),
        train=Split(x[train], y[train]),
        val=Split(x[val], y[val]),
        test=Split(x[test], y[test]),
        description="Handwritten digits 0-9, 8x8 greyscale (scikit-learn's copy of UCI optdigits).",
        info={
            "source": "sklearn.datasets.load_digits (bundled with scikit-learn)",
            "split rule": f"stratified {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%} train/val/test, seed {seed}",
        },
    )


def load_builtin(name: str, *, seed: int = 0, where: str = "[task]", **options) -> Task:
    """A bundled task by name, e.g. ``load_builtin("digits", seed=0)``."""
    if name not in BUILTINS:
        raise DataError(f"{where}: unknown builtin task '{name}'{did_you_mean(name, BUILTINS)}; available: {', '.join(sorted(BUILTINS))}")
    return BUILTINS[name](seed=seed, **options)
