"""Task -> Task transforms: every change made to the data after it loads, in one declared order.

A ``[task]`` table names its data (``builtin = ...`` or ``path = ...``) and,
beside it, the changes to make to that data, each under its own key::

    [task]
    builtin = "digits"
    labels_per_class = 8            # 8 labelled train examples per class, the rest unlabelled
    holdout_classes = ["8", "9"]    # those classes leave every split; their test examples become near-OOD

Each key is a registered ``TaskTransform``. Its options are checked like a
recipe's or a check's (``_options.construct``: types from the constructor's
annotations, ranges from ``limits``). Transforms run in the order of their
``order``, whatever the order of the file (above, the classes are held out
first, then 8 labels per class are drawn among the rest). Each one leaves an
``Applied`` record on the Task (``Task.transforms``): its options, a line for
the report and a JSON-able account of what it did (the indices it touched),
so a check can read the truth. ``Task.digest()`` hashes the options, so a
changed transform changes the data hash, the run's caches and every
candidate's provenance.

Adding a transform is one registered class: a ``key``, an ``order``, a
constructor that stores its options, and ``change``::

    @register
    class Exclude(TaskTransform):
        key, order, example = "exclude", 5, "exclude = [3, 17]"

        def __init__(self, *, exclude: list[int]) -> None:
            self.exclude = list(exclude)

        def change(self, task: Task, context: TransformContext) -> Change:
            keep = np.setdiff1d(np.arange(len(task.train)), self.exclude)
            return Change(dataclasses.replace(task, train=task.train.subset(keep)),
                          f"{len(self.exclude)} train examples excluded", {"train": self.exclude})
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._options import Limit, at_least, between, construct, option_names
from ..errors import DataError, SpecError, did_you_mean
from .overlap import SHARED_ROWS, with_shared_rows
from .task import Applied, Split, Task


@dataclass(frozen=True)
class TransformContext:
    """What a transform may read beyond its options.

    Attributes:
        seed: the study's seed (a transform that draws at random records it).
        base_dir: the study file's folder, for options that name files.
        where: the place in the study file, for error messages.
    """

    seed: int = 0
    base_dir: Path = Path(".")
    where: str = "[task]"


@dataclass(frozen=True)
class Change:
    """What ``TaskTransform.change`` returns: the new Task, a line for the report, and what was done (JSON-able)."""

    task: Task
    text: str
    record: Mapping[str, Any]


class TaskTransform:
    """One change to a Task, named by its ``[task]`` key.

    Subclasses declare ``key`` (the ``[task]`` key), ``order`` (where it runs
    among the others; lower first), ``example`` (a valid line, said when a
    value is wrong), ``limits`` (ranges of its options) and ``seeded`` (it
    draws at random with the study's seed); store their keyword-only options
    in ``__init__``; and compute in ``change``. ``apply`` is the one verb.
    """

    key: ClassVar[str] = ""
    order: ClassVar[int] = 0
    example: ClassVar[str] = ""
    limits: ClassVar[Mapping[str, Limit]] = {}
    seeded: ClassVar[bool] = False

    @classmethod
    def options_from(cls, value: Any, where: str) -> dict[str, Any]:
        """The constructor's options from the ``[task]`` value: a table is the options, anything else the option named like the key."""
        return dict(value) if isinstance(value, Mapping) else {cls.key: value}

    def params(self) -> dict[str, Any]:
        """The options as given to the constructor; ``type(self)(**t.params())`` rebuilds it."""
        return {name: getattr(self, name) for name in option_names(type(self))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    def check_task(self, task: Task, where: str) -> None:
        """Refuse, in one line, a task this transform cannot change (``resolve.py`` asks before anything trains)."""

    def change(self, task: Task, context: TransformContext) -> Change:
        raise NotImplementedError  # abstract: each registered transform overrides it

    def apply(self, task: Task, context: TransformContext | None = None) -> Task:
        """The transformed Task, with an ``Applied`` record appended to ``task.transforms``."""
        context = context or TransformContext()
        done = self.change(task, context)
        options = {**self.params(), **({"seed": context.seed} if self.seeded else {})}
        applied = Applied(self.key, _jsonable(options), done.text, _jsonable(done.record))
        return dataclasses.replace(done.task, transforms=(*task.transforms, applied))


TRANSFORMS: dict[str, type[TaskTransform]] = {}


def register(cls: type[TaskTransform]) -> type[TaskTransform]:
    """Class decorator: make ``cls`` the transform of its ``[task]`` key."""
    if not cls.key or cls.key in TRANSFORMS:
        raise TypeError(f"{cls.__name__}: transform key {cls.key!r} is empty or already registered")
    same = [k for k, c in TRANSFORMS.items() if c.order == cls.order]
    if same:  # the order must be total, or two files could run two transforms in different orders
        raise TypeError(f"{cls.__name__}: order {cls.order} is already that of '{same[0]}'; choose another")
    TRANSFORMS[cls.key] = cls
    return cls


def make_transform(key: str, value: Any, where: str) -> TaskTransform:
    """The transform ``key = value`` of a ``[task]`` table names, its options checked.

    Raises:
        SpecError: an unknown key, or a bad value: one line naming the key and the fix.
    """
    if key not in TRANSFORMS:
        raise SpecError(f"{where}: unknown transform '{key}'{did_you_mean(key, TRANSFORMS)}; use one of {', '.join(TRANSFORMS)}")
    cls = TRANSFORMS[key]
    try:
        return construct(cls, cls.options_from(value, where), where)
    except SpecError as error:
        if "; " in str(error) or not cls.example:  # the message already says the fix
            raise
        raise SpecError(f"{error}; e.g. {cls.example}") from None


def transforms_in(table: Mapping[str, Any], where: str) -> list[TaskTransform]:
    """The transforms a ``[task]`` table names (other keys are the loader's), in the declared order."""
    made = [make_transform(key, value, where) for key, value in table.items() if key in TRANSFORMS]
    return sorted(made, key=lambda t: t.order)


def apply_transforms(task: Task, transforms: Iterable[TaskTransform], context: TransformContext) -> Task:
    """``task`` with each transform applied in the declared order (not the order given).

    A task whose loader counted test rows shared with train is counted again
    after transforms that chose rows, so the count is of what is evaluated.
    """
    transforms = sorted(transforms, key=lambda t: t.order)
    for transform in transforms:
        task = transform.apply(task, context)
    if not transforms or SHARED_ROWS not in task.info:
        return task
    return with_shared_rows(task, after="the task's transforms (" + ", ".join(t.key for t in transforms) + ")")


def _jsonable(value: Any) -> Any:
    """Numpy arrays and scalars as lists and numbers, tuples as lists, so records survive ``json.dumps``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- the transforms -------------------------------------------------------------


@register
class HoldoutClasses(TaskTransform):
    """Classes that leave every split; their test examples become the near-OOD set (``task.ood``).

    Classes are named as in ``class_names`` (integers are accepted for numeric
    names); the remaining classes are re-indexed in order.
    """

    key, order, example = "holdout_classes", 10, 'holdout_classes = ["8", "9"]'

    def __init__(self, *, holdout_classes: list[str | int]) -> None:
        if not holdout_classes:
            raise ValueError('holdout_classes must name at least one class, e.g. holdout_classes = ["8", "9"]')
        self.holdout_classes = list(holdout_classes)

    def check_task(self, task: Task, where: str) -> None:
        unknown = [c for c in map(str, self.holdout_classes) if c not in task.class_names]
        if unknown:
            raise DataError(f"task '{task.name}': holdout_classes {unknown} are not classes of the task; classes: {', '.join(task.class_names)}")

    def change(self, task: Task, context: TransformContext) -> Change:
        self.check_task(task, context.where)
        names = [str(c) for c in self.holdout_classes]
        held = np.array([task.class_names.index(c) for c in names])
        keep = [i for i in range(task.num_classes) if i not in held]
        remap = np.full(task.num_classes, -1)
        remap[keep] = np.arange(len(keep))

        def kept(split: Split) -> Split:
            part = split.subset(~np.isin(split.y, held))
            return Split(part.x, remap[part.y], part.groups, part.meta)

        ood = task.test.subset(np.isin(task.test.y, held))
        new = dataclasses.replace(
            task,
            class_names=tuple(task.class_names[i] for i in keep),
            train=kept(task.train), val=kept(task.val), test=kept(task.test),
            ood=Split(ood.x, np.full(len(ood), -1), ood.groups, ood.meta),
        )
        removed = {name: np.flatnonzero(np.isin(split.y, held)) for name, split in task.labelled_splits()}
        text = f"classes {', '.join(names)} held out as near-OOD (their {len(ood)} test examples)"
        return Change(new, text, {"classes": names, "removed": removed})


@register
class UserOod(TaskTransform):
    """Every example of another data set (all its splits) as the task's named OOD set (``task.ood_user``).

    The value is a ``[task]``-like table: ``ood = { path = "other_images" }``
    or ``ood = { builtin = "digits" }``; its inputs must have the task's
    modality and shape.
    """

    key, order, example = "ood", 20, 'ood = { path = "other_images" } or { builtin = "digits" }'

    def __init__(self, *, ood: Mapping[str, Any]) -> None:
        self.ood = dict(ood)

    @classmethod
    def options_from(cls, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise SpecError(f"{where} ood: must be a table, e.g. {cls.example}")
        return {"ood": value}  # the table is the other data set, not this transform's options

    def change(self, task: Task, context: TransformContext) -> Change:
        from .task_table import load_task

        where = f"{context.where} ood"
        other = load_task(self.ood, base_dir=context.base_dir, seed=context.seed, where=where)
        x = np.concatenate([s.x for _, s in other.labelled_splits()])
        if other.modality != task.modality or tuple(x.shape[1:]) != tuple(task.train.x.shape[1:]):
            raise DataError(f"{where}: its inputs are {other.modality} {tuple(x.shape[1:])}, the task's are {task.modality} {tuple(task.train.x.shape[1:])}; "
                            "give OOD data of the same kind and shape")
        source = other.info.get("source", other.name)
        new = dataclasses.replace(task, ood_user=Split(x, np.full(len(x), -1)))
        return Change(new, f"OOD set: {source} ({len(x)} examples)", {"source": str(source), "examples": len(x)})


@register
class MaxRows(TaskTransform):
    """Keep at most ``n`` examples of each split (plus one per class too rare for a share): a stratified, seeded sample, in order.

    For trying a study quickly on a large data set (``assay run --quick``
    sets it): the figures of a capped test split are honest, only wider.
    Labelled splits keep each class's share (largest remainders, every class
    present keeps at least one example); the pool and the OOD sets are
    sampled uniformly.
    """

    key, order, example = "max_rows", 25, "max_rows = 500"
    limits = {"max_rows": at_least(10)}
    seeded = True

    def __init__(self, *, max_rows: int) -> None:
        self.max_rows = max_rows

    def change(self, task: Task, context: TransformContext) -> Change:
        rng = np.random.default_rng([context.seed, self.max_rows])
        names = [n for n in ("train", "val", "test", "pool", "ood", "ood_user") if getattr(task, n) is not None]
        kept = {n: _stratified_cap(getattr(task, n).y, self.max_rows, rng) for n in names}
        changed = {n: k for n, k in kept.items() if k is not None}
        new = dataclasses.replace(task, **{n: getattr(task, n).subset(k) for n, k in changed.items()})
        sizes = ", ".join(f"{n} {len(getattr(task, n))} -> {len(k)}" for n, k in changed.items()) or "every split already fits"
        return Change(new, f"at most {self.max_rows} examples per split, seed {context.seed}: {sizes}", {"kept": changed})


def _stratified_cap(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted indices of at most ``n`` examples keeping each label's share, or ``None`` when all fit."""
    if len(y) <= n:
        return None
    labels, counts = np.unique(y, return_counts=True)
    share = counts * n / len(y)
    take = np.maximum(np.floor(share).astype(int), 1)
    for i in np.argsort(-(share - np.floor(share)), kind="stable")[: max(0, n - int(take.sum()))]:
        take[i] += 1  # largest remainders
    chosen = [rng.permutation(np.flatnonzero(y == label))[:t] for label, t in zip(labels, take)]
    return np.sort(np.concatenate(chosen))


@register
class LabelsPerClass(TaskTransform):
    """Keep ``k`` labelled train (and val) examples per class; the rest go to the unlabelled pool.

    The few-label regime: validation is cut to ``k`` per class as well (at
    least 2), since a large labelled validation set would be labels the
    setting does not have. The test split is unchanged. ``draw`` picks
    another labelled subset: the same (seed, k, draw) gives the same examples
    to every recipe, so recipes can be compared draw by draw. A recipe's own
    ``labels_per_class`` (and ``draws``) applies this transform to its copy
    of the task.
    """

    key, order, example = "labels_per_class", 30, "labels_per_class = 8"
    limits = {"labels_per_class": at_least(1), "draw": at_least(0)}
    seeded = True

    def __init__(self, *, labels_per_class: int, draw: int = 0) -> None:
        self.labels_per_class = labels_per_class
        self.draw = draw

    def check_task(self, task: Task, where: str) -> None:
        task.check_labels_per_class(self.labels_per_class, where)

    def change(self, task: Task, context: TransformContext) -> Change:
        self.check_task(task, context.where)
        k, draw = self.labels_per_class, self.draw
        rng = np.random.default_rng([context.seed, k] if draw == 0 else [context.seed, k, draw])

        def keep(split: Split, n: int) -> np.ndarray:
            chosen = [rng.permutation(np.flatnonzero(split.y == c))[:n] for c in range(task.num_classes)]
            mask = np.zeros(len(split), bool)
            mask[np.concatenate(chosen)] = True
            return mask

        train_keep, val_keep = keep(task.train, k), keep(task.val, max(2, k))  # train first: the rng's order is the draw
        unlabelled = [s.subset(~m) for s, m in ((task.train, train_keep), (task.val, val_keep))]
        if task.pool is not None:
            unlabelled.append(task.pool)
        pool = Split(
            np.concatenate([np.asarray(u.x) for u in unlabelled]),
            np.full(sum(len(u) for u in unlabelled), -1),
            meta={m: np.concatenate([u.meta[m] for u in unlabelled]) for m in task.train.meta if all(m in u.meta for u in unlabelled)},
        )
        new = dataclasses.replace(task, train=task.train.subset(train_keep), val=task.val.subset(val_keep), pool=pool)
        text = (f"train: {k} labels per class, val: {max(2, k)} per class, seed {context.seed}{f', draw {draw}' if draw else ''}; "
                "the rest unlabelled in the pool")
        return Change(new, text, {"kept": {"train": np.flatnonzero(train_keep), "val": np.flatnonzero(val_keep)}, "pool": len(pool)})


@register
class Poison(TaskTransform):
    """A simulated backdoor attack on the training split (BadNets, Gu et al. 2017).

    ``poison = { kind = "badnets", fraction = 0.05, target = "0" }`` stamps a
    trigger (``data/triggers.py``: a corner patch on images, a short pattern
    on signals, an out-of-range value in a table column, a rare word in a
    text) on ``fraction`` of the *training* examples, drawn with the study's
    seed among those not already of the ``target`` class, and relabels them
    to ``target``. ``fraction`` is the share of the whole training split (the
    poisoning rate of the literature). Validation and test stay clean; the
    ``trigger`` view stamps test inputs to measure the attack's success. The
    record keeps the poisoned indices (into the training split, whose rows it
    neither adds nor removes), their original labels and the trigger, the
    truth the ``poisoning`` check is scored against. It runs after every
    transform that chooses rows, so those indices are the final split's.
    """

    key, order, example = "poison", 40, 'poison = { kind = "badnets", fraction = 0.05, target = "0" }'
    limits = {"fraction": between(0, 0.5, low_open=True), "size": at_least(1)}
    seeded = True
    KINDS = ("badnets",)

    def __init__(self, *, kind: str = "badnets", fraction: float, target: str | int, trigger: str | None = None,
                 size: int | None = None, column: str | None = None, word: str = "cf") -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown poisoning kind '{kind}'{did_you_mean(kind, self.KINDS)}; use kind = \"badnets\"")
        self.kind, self.fraction, self.target, self.trigger = kind, fraction, target, trigger
        self.size, self.column, self.word = size, column, word

    @classmethod
    def options_from(cls, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise SpecError(f"{where} poison: must be a table; e.g. {cls.example}")
        return dict(value)

    def _target(self, task: Task, where: str) -> int:
        name = str(self.target)
        if name not in task.class_names:
            raise DataError(f"{where} poison: target '{name}' is not a class of the task{did_you_mean(name, task.class_names)}; "
                            f"classes: {', '.join(task.class_names)}")
        return task.class_names.index(name)

    def _count(self, task: Task, target: int, where: str) -> int:
        n = int(round(self.fraction * len(task.train)))
        others = int((task.train.y != target).sum())
        if n < 1 or n > others:
            raise DataError(f"{where} poison: fraction {self.fraction:g} of {len(task.train)} training examples is {n} to poison, "
                            f"and {others} are not of the target class; use a fraction between {1 / len(task.train):.3g} and {others / len(task.train):.3g}")
        return n

    def check_task(self, task: Task, where: str) -> None:
        from .triggers import make_trigger

        self._count(task, self._target(task, where), where)
        make_trigger(task, self.trigger, size=self.size, column=self.column, word=self.word, where=f"{where} poison")

    def change(self, task: Task, context: TransformContext) -> Change:
        from .triggers import make_trigger, stamp

        where = context.where
        target = self._target(task, where)
        n = self._count(task, target, where)
        trigger = make_trigger(task, self.trigger, size=self.size, column=self.column, word=self.word, where=f"{where} poison")
        rng = np.random.default_rng([context.seed, zlib.crc32(b"poison")])
        chosen = np.sort(rng.choice(np.flatnonzero(task.train.y != target), size=n, replace=False))
        stamped = stamp(task, task.train.subset(chosen), trigger)
        x = np.array(task.train.x, copy=True)  # a lazy image folder is decoded: the poisoned split lives in memory
        x[chosen] = stamped.x
        y = task.train.y.copy()
        y[chosen] = target
        meta = dict(task.train.meta)
        if "text" in meta:
            texts = np.array(meta["text"], dtype=object, copy=True)
            texts[chosen] = stamped.meta["text"]
            meta["text"] = texts
        train = Split(x, y, task.train.groups, meta)
        name = task.class_names[target]
        text = (f"BadNets poisoning: {n} of {len(task.train)} train examples ({n / len(task.train):.1%}) stamped with "
                f"{trigger.describe()} and relabelled '{name}', seed {context.seed}")
        record = {"poisoned": chosen, "original_labels": task.train.y[chosen], "target": name, "target_index": target,
                  "trigger": trigger.record()}
        return Change(dataclasses.replace(task, train=train), text, record)


def poison_record(task: Task) -> Mapping[str, Any] | None:
    """The ``poison`` transform's record on ``task`` (the poisoned indices, the target and the trigger), or ``None``."""
    found = [t.record for t in task.transforms if t.key == Poison.key]
    return found[-1] if found else None
