"""Seeded, stratified splits shared by every loader."""

from __future__ import annotations

import numpy as np

from ..errors import DataError

SPLITS = ("train", "val", "test")
Fractions = tuple[float, float, float]


def stratified_split(
    y: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), *, seed: int = 0, source: str = "data"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train / val / test, with each class spread in proportion.

    Every class with at least three examples lands in every split whose
    fraction is above zero. The
    same ``seed`` and labels always give the same indices.

    Raises:
        DataError: when fractions do not sum to 1 or a class is too small.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0 or fractions[0] <= 0:
        raise DataError(f"{source}: split fractions {fractions} must be three non-negative numbers that sum to 1, train's positive")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < 3:
            raise DataError(
                f"{source}: class {label!r} has {len(members)} example(s); each class needs at least 3 to split into train/val/test"
            )
        members = rng.permutation(members)
        # A split asked for gets at least one example of each class.
        n_val = max(1, round(fractions[1] * len(members))) if fractions[1] > 0 else 0
        n_test = max(1, round(fractions[2] * len(members))) if fractions[2] > 0 else 0
        n_train = len(members) - n_val - n_test
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train : n_train + n_val])
        parts[2].append(members[n_train + n_val :])
    return tuple(np.sort(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


VAL_FRACTION = 0.15  # of train, when the data brings train and test but no validation split


def carve_validation(
    y: np.ndarray, *, seed: int = 0, source: str = "data", fraction: float = VAL_FRACTION
) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices of train and validation carved from a given train split (stratified, seeded), and the rule in words.

    Raises:
        DataError: when ``fraction`` is not in (0, 1) or a class is too small to split.
    """
    if not 0 < fraction < 1:
        raise DataError(f"{source}: validation fraction {fraction} must be between 0 and 1 (exclusive); e.g. {VAL_FRACTION}")
    train, val, _ = stratified_split(y, (1 - fraction, fraction, 0.0), seed=seed, source=source)
    return train, val, f"given train/test; val is {fraction:.0%} of train (stratified, seed {seed})"
