"""Task and Split: the data and what it means.

A Task is everything the rest of assay knows about the data: its splits, its
modality, its class names, and optional group attributes (for fairness) and
metadata columns (for slices). Loaders in ``sources.py`` and ``builtin.py``
build Tasks; nothing else reads files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import DataError

MODALITIES = ("image", "signal", "tabular", "text")


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a task.

    Attributes:
        x: inputs, ``(N, ...)`` float32 for image/signal/tabular (images are
            ``(N, C, H, W)``), an object array of strings for text; or a lazy
            dataset (``data.lazy.LazyImages``) read batch by batch.
        y: integer class indices ``(N,)``; ``-1`` marks an unlabelled example.
        groups: group attributes for fairness, name -> ``(N,)`` array.
        meta: metadata columns for slices, name -> ``(N,)`` array.
    """

    x: np.ndarray
    y: np.ndarray
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.x)
        if len(self.y) != n:
            raise DataError(f"split: {n} inputs but {len(self.y)} labels; give one label per input")
        for kind, columns in (("group", self.groups), ("metadata", self.meta)):
            for name, values in columns.items():
                if len(values) != n:
                    raise DataError(
                        f"{kind} column '{name}': {len(values)} values for {n} examples; give one per example"
                    )
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> Split:
        """The examples at ``index`` (an integer or boolean array)."""
        return Split(
            x=self.x.take(index) if hasattr(self.x, "take") and not isinstance(self.x, np.ndarray) else self.x[index],
            y=self.y[index],
            groups={k: v[index] for k, v in self.groups.items()},
            meta={k: v[index] for k, v in self.meta.items()},
        )

    def digest(self) -> str:
        """A content hash of inputs, labels, groups and metadata (computed once)."""
        if "_digest" not in self.__dict__:
            self.__dict__["_digest"] = self._compute_digest()  # frozen: write around __setattr__
        return self.__dict__["_digest"]

    def _compute_digest(self) -> str:
        h = hashlib.sha256()
        for name, array in (("x", self.x), ("y", self.y), *sorted(self.groups.items()), *sorted(self.meta.items())):
            h.update(name.encode())
            if hasattr(array, "digest_into"):  # a lazy dataset hashes its files, without decoding them
                array.digest_into(h)
                continue
            a = np.asarray(array)
            if a.dtype == object:
                h.update("\x1f".join(map(str, a.ravel())).encode())
            else:
                h.update(str(a.shape).encode() + str(a.dtype).encode())
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class Applied:
    """One transform applied to a Task (``data/transforms.py``): what was asked, and what it did.

    Attributes:
        key: the transform's ``[task]`` key, e.g. ``"labels_per_class"``.
        options: its options, plus the seed when it draws at random (JSON-able).
        text: one line for the report, e.g. ``"train: 8 labels per class, ..."``.
        record: what it did, JSON-able: the indices it touched, per split, into
            the splits as they were before it ran (the truth a check can read).
    """

    key: str
    options: Mapping[str, Any]
    text: str
    record: Mapping[str, Any] = field(default_factory=dict)

    def identity(self) -> str:
        """Key and options as canonical JSON: what ``Task.digest()`` hashes."""
        return json.dumps({"key": self.key, "options": self.options}, sort_keys=True, default=str)


@dataclass(frozen=True, eq=False)
class Task:
    """The data of a study and what it means.

    Attributes:
        name: short name, e.g. ``"digits"``.
        modality: one of ``image``, ``signal``, ``tabular``, ``text``.
        class_names: one name per class index.
        train, val, test: labelled splits; ``val`` drives early stopping.
        pool: optional unlabelled examples (labels all ``-1``).
        ood: optional out-of-distribution examples (labels all ``-1``), e.g.
            the held-out classes of ``without_classes``.
        description: one line for the report.
        info: free-form facts for the report (source, split rule, ...).
        transforms: the transforms applied since loading, in the order they ran.
    """

    name: str
    modality: str
    class_names: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    pool: Split | None = None
    ood: Split | None = None
    ood_user: Split | None = None  # an OOD set the user names (any other data of the same input shape)
    description: str = ""
    pipeline: Any = None  # how raw rows become features (tabular), for serving new data
    info: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""  # what made it: "builtin", "table", "image_folder", "npz" ("" for a task built in code)
    transforms: tuple[Applied, ...] = ()

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise DataError(f"task '{self.name}': unknown modality '{self.modality}'; use one of {', '.join(MODALITIES)}")
        if len(self.class_names) < 2:
            raise DataError(f"task '{self.name}': found {len(self.class_names)} class; a classifier needs at least two")
        k = len(self.class_names)
        for split_name, split in self.labelled_splits():
            if len(split) == 0:
                raise DataError(f"task '{self.name}': the {split_name} split is empty; give it examples or change the split fractions")
            bad = (split.y < 0) | (split.y >= k)
            if bad.any():
                raise DataError(
                    f"task '{self.name}': {split_name} split has label {int(split.y[bad][0])} outside 0..{k - 1}"
                )
        object.__setattr__(self, "class_names", tuple(self.class_names))
        for split_name, split in (*self.labelled_splits(), ("pool", self.pool), ("ood", self.ood), ("ood_user", self.ood_user)):
            if split is not None:
                _refuse_non_finite(split.x, f"{self.info.get('source', f'task {self.name!r}')}", split_name)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 8, 8)``; ``(T,)`` token ids for text."""
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split:
        """The split called ``name`` (``train``, ``val``, ``test`` or ``pool``)."""
        found = getattr(self, name, None) if name in ("train", "val", "test", "pool", "ood", "ood_user") else None
        if found is None:
            raise DataError(f"task '{self.name}': no split '{name}'; use train, val or test (ood needs holdout_classes)")
        return found

    def groups_hint(self) -> str:
        """How to give this task a group attribute (for fairness), in terms of where it came from."""
        if self.origin == "table":
            return 'add groups = ["<column>"] to [task] naming the group column'
        if self.origin == "builtin":
            return f"the builtin task '{self.name}' has no group attribute; fairness needs one (builtin = \"hmda\", or a table with groups = [\"<column>\"])"
        if self.origin in ("image_folder", "npz"):
            kind = "an image folder" if self.origin == "image_folder" else "an NPZ file"
            return f"{kind} carries no group attribute; use a table with a group column (path = \"data.csv\", groups = [\"<column>\"])"
        if self.origin == "in_memory":
            return "pass groups={\"<name>\": {\"train\": ..., \"test\": ...}} to Task.from_arrays, or groups=[\"<column>\"] to Task.from_frame"
        return "give the task's splits group attributes (Split(x, y, groups={...}))"

    def smallest_class(self, split: str = "train") -> tuple[str, int]:
        """The class with the fewest examples in ``split``, and its count."""
        counts = np.bincount(self.split(split).y[self.split(split).y >= 0], minlength=self.num_classes)
        i = int(np.argmin(counts))
        return self.class_names[i], int(counts[i])

    def check_labels_per_class(self, k: int, where: str = "") -> None:
        """Refuse ``labels_per_class = k`` when a class has fewer than ``k`` training examples.

        Raises:
            DataError: naming the class, its count and the largest k that works.
        """
        name, n = self.smallest_class("train")
        if k > n:
            raise DataError(f"{where or f'task {self.name!r}'}: labels_per_class = {k} but class '{name}' has only {n} training examples; use labels_per_class <= {n}")

    def labelled_splits(self) -> tuple[tuple[str, Split], ...]:
        return (("train", self.train), ("val", self.val), ("test", self.test))

    def digest(self) -> str:
        """A content hash of every split; recorded with each candidate (computed once)."""
        if "_digest" not in self.__dict__:
            self.__dict__["_digest"] = self._compute_digest()
        return self.__dict__["_digest"]

    def _compute_digest(self) -> str:
        h = hashlib.sha256(f"{self.name}|{self.modality}|{'|'.join(self.class_names)}".encode())
        for _, split in (*self.labelled_splits(), ("pool", self.pool), ("ood", self.ood), ("ood_user", self.ood_user)):
            h.update(split.digest().encode() if split is not None else b"-")
        for applied in self.transforms:  # two ways to the same examples are still two tasks; none leaves the hash as it was
            h.update(applied.identity().encode())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """Sizes, class balance and the transforms applied (one line each), for the report and ``assay show``."""
        counts = {
            name: np.bincount(split.y, minlength=self.num_classes).tolist() for name, split in self.labelled_splits()
        }
        return {
            "name": self.name,
            "modality": self.modality,
            "description": self.description,
            "classes": list(self.class_names),
            "input_shape": list(self.input_shape),
            "sizes": {name: len(split) for name, split in self.labelled_splits()}
            | ({"pool": len(self.pool)} if self.pool is not None else {})
            | ({"ood": len(self.ood)} if self.ood is not None else {})
            | ({"ood (user)": len(self.ood_user)} if self.ood_user is not None else {}),
            "class_counts": counts,
            "groups": sorted(self.test.groups),
            "metadata": sorted(self.test.meta),
            **dict(self.info),
            **({"transforms": [t.text for t in self.transforms]} if self.transforms else {}),
        }

    @classmethod
    def from_arrays(cls, x_train: Any, y_train: Any, x_test: Any, y_test: Any, **options: Any) -> Task:
        """A Task from arrays of inputs ``(N, ...)`` and labels ``(N,)`` (numpy, torch or lists).

        Options (keyword-only): ``x_val``, ``y_val`` (else 15% of train is
        carved off, stratified, with ``seed``), ``modality``, ``class_names``
        (integer labels index into it, string labels must be among it),
        ``groups`` (name -> split -> values), ``name``, ``seed``,
        ``val_fraction``, ``description``. See ``data.in_memory.from_arrays``.

        Raises:
            DataError: one line naming the argument (e.g. ``x_test``), the problem and the fix.
        """
        from .in_memory import from_arrays

        return from_arrays(x_train, y_train, x_test, y_test, **options)

    @classmethod
    def from_frame(cls, train_df: Any, test_df: Any, *, label: str, **options: Any) -> Task:
        """A tabular Task from pandas DataFrames of raw rows, encoded as a table file is.

        Options (keyword-only): ``val_df`` (else 15% of train rows, stratified,
        with ``seed``), ``groups``, ``meta``, ``features``, ``name``, ``seed``,
        ``val_fraction``, ``description``. See ``data.in_memory.from_frame``.

        Raises:
            DataError: one line naming the frame (e.g. ``test_df``), the problem and the fix.
        """
        from .in_memory import from_frame

        return from_frame(train_df, test_df, label=label, **options)

    @classmethod
    def from_dataset(cls, train: Any, test: Any, *, val: Any = None, **options: Any) -> Task:
        """A Task from ``torch.utils.data.Dataset``s of ``(input, label)`` pairs; options as ``from_arrays``.

        Raises:
            DataError: an item that is not a pair, inputs of different shapes, and what ``from_arrays`` refuses.
        """
        from .in_memory import from_dataset

        return from_dataset(train, test, val=val, **options)

    def without_classes(self, classes: list[str] | list[int]) -> Task:
        """Remove ``classes`` from every split and keep their test examples as near-OOD.

        The ``holdout_classes`` transform (``data/transforms.py``), recorded on
        the returned Task like any other.
        """
        from .transforms import HoldoutClasses, TransformContext

        return HoldoutClasses(holdout_classes=list(classes)).apply(self, TransformContext())

    def with_labels_per_class(self, k: int, *, seed: int = 0, draw: int = 0) -> Task:
        """Keep ``k`` labelled train (and val) examples per class; the rest go to the unlabelled pool.

        The ``labels_per_class`` transform (``data/transforms.py``): the same
        (seed, k, draw) gives the same examples to every recipe.

        Raises:
            SpecError: ``k`` below 1. DataError: a class with fewer than ``k`` training examples.
        """
        from .transforms import make_transform, TransformContext

        where = f"task {self.name!r}"
        transform = make_transform("labels_per_class", {"labels_per_class": k, "draw": draw}, where)
        return transform.apply(self, TransformContext(seed=seed, where=where))


def _refuse_non_finite(x: Any, source: str, split: str) -> None:
    """NaN or infinite inputs would train a model on garbage (or a NaN loss): refuse them, naming where."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        return  # text ids, lazy images (decoded pixels are always finite)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if len(x) else np.zeros(0, bool)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{source}: {len(rows)} {split} example(s) hold NaN or infinite values (first: example {int(rows[0])}); "
                        "replace or drop them before loading (a table's empty cells are filled with the training median)")
