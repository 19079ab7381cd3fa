"""Tasks from data already in memory: arrays, pandas DataFrames, torch Datasets.

``Task.from_arrays``, ``Task.from_frame`` and ``Task.from_dataset`` delegate
here. Each makes the checks the file loaders make, through the same functions
and so with the same messages, naming the argument (``x_test``,
``test_df``) where a loader names its file. A frame's columns are encoded by
the same ``TablePipeline`` a table file gets (``sources.table_task``). A
missing validation split is carved from train, stratified and seeded, and the
Task's ``info["split rule"]`` says so; test rows that also appear in train are
counted (``info["test rows also in train/val"]``), not refused. Strings given
as ``modality="text"`` (or 1-D arrays of strings) are tokenized by a
``TextPipeline``, which remembers them, so a model that reads text itself is
given these very strings (``data/text.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .sources import (_column, _refuse_infinite, array_modality, as_inputs, check_split_arrays, refuse_non_finite_array,
                      refuse_one_class, table_task)
from .overlap import with_shared_rows
from .splitting import SPLITS, VAL_FRACTION, carve_validation
from .task import Split, Task

_SHAPES = {"tabular": (2,), "signal": (2, 3), "image": (3, 4)}  # input dimensions (with N) each modality accepts


def from_arrays(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, *,
    x_val: Any = None, y_val: Any = None,
    modality: str | None = None,
    class_names: Sequence[str] | None = None,
    groups: Mapping[str, Mapping[str, Any]] | None = None,
    name: str = "arrays", seed: int = 0, val_fraction: float = VAL_FRACTION,
    description: str = "", source: str = "Task.from_arrays",
    tokenizer: str | None = None, max_length: int | None = None,
) -> Task:
    """A Task from arrays (numpy, torch tensors or lists) of inputs and labels.

    Args:
        x_train, y_train, x_test, y_test: inputs ``(N, ...)`` and labels
            ``(N,)``; for text, ``(N,)`` strings.
        x_val, y_val: a validation split; without one, ``val_fraction`` of
            train is carved off, stratified, with ``seed``.
        modality: ``tabular`` (N, D), ``signal`` (N, L) or (N, C, L), ``image``
            (N, H, W) or (N, C, H, W); by default read from the dimensions
            like an NPZ file: 2 tabular, 3 signal, 4 image; ``text`` for
            strings (the default for 1-D arrays of strings).
        class_names: one name per class. Integer labels index into it; string
            labels must be among it. Without it, the sorted distinct labels.
        groups: group attributes for fairness, name -> split -> values, e.g.
            ``{"sex": {"train": s_train, "test": s_test}}`` (and ``"val"``
            when ``x_val`` is given).
        tokenizer, max_length: for text, the tokenizer (``minilm`` or a
            model folder with a ``tokenizer.json``) and the tokens kept per
            text (default ``minilm``, 64).

    Raises:
        DataError: one line naming the argument, the problem and the fix.
    """
    x_all = {s: _array(x, f"x_{s}", source) for s, x in (("train", x_train), ("val", x_val), ("test", x_test))}
    y_all = {s: _array(y, f"y_{s}", source) for s, y in (("train", y_train), ("val", y_val), ("test", y_test))}
    pipeline = None
    if modality == "text" or (modality is None and x_all["train"] is not None and x_all["train"].ndim == 1 and x_all["train"].dtype.kind in "UO"):
        kind, pipeline = "text", _text_pipeline(x_all, y_all, tokenizer, max_length, source)
    else:
        if tokenizer is not None or max_length is not None:
            raise DataError(f"{source}: tokenizer and max_length apply to text; give modality='text' with strings, or leave them out")
        for s, x in x_all.items():
            if x is not None:
                refuse_non_finite_array(x, f"x_{s}", source)
        check_split_arrays(x_all, y_all, source)
        kind = array_modality(x_all["train"], modality, source)
    if kind in _SHAPES and x_all["train"].ndim not in _SHAPES[kind]:
        raise DataError(f"{source}: x_train has shape {x_all['train'].shape} but modality '{kind}' takes {_SHAPES[kind]}-dimensional "
                        "arrays (N first); reshape it or name another modality")
    names, y_enc = _labels(y_all, class_names, source)
    refuse_one_class(len(np.unique(y_enc["train"])), "y_train", source)
    group_all = _groups(groups or {}, x_all, source)
    splits = {
        s: Split(pipeline.encode(x), y_enc[s], groups=group_all[s], meta={"text": x}) if pipeline is not None else
        Split(_inputs(x, kind), y_enc[s], groups=group_all[s]) for s, x in x_all.items() if x is not None
    }
    if "val" in splits:
        rule = "given train/val/test"
    else:
        train, val, rule = carve_validation(splits["train"].y, seed=seed, source=source, fraction=val_fraction)
        splits["val"], splits["train"] = splits["train"].subset(val), splits["train"].subset(train)
    tokens = {"tokenizer": pipeline.describe()} if pipeline is not None else {}
    task = Task(name=name, modality=kind, class_names=names, **splits, description=description or f"Arrays given in memory ({source}).",
                info={"source": source, "split rule": rule, **tokens}, pipeline=pipeline, origin="in_memory")
    return with_shared_rows(task)


def from_dataset(train: Any, test: Any, *, val: Any = None, source: str = "Task.from_dataset", **options: Any) -> Task:
    """A Task from ``torch.utils.data.Dataset``s (or any sequence) of ``(input, label)`` pairs.

    Inputs are stacked into arrays and labels gathered (ints or strings); the
    rest is ``from_arrays``, whose keyword options (``modality``,
    ``class_names``, ``name``, ``seed`` ...) this takes too.

    Raises:
        DataError: an item that is not an ``(input, label)`` pair, inputs of
            different shapes, and everything ``from_arrays`` refuses.
    """
    pairs = {s: _unpack(d, s, source) for s, d in (("train", train), ("val", val), ("test", test)) if d is not None}
    (x_train, y_train), (x_test, y_test) = pairs["train"], pairs["test"]
    x_val, y_val = pairs.get("val", (None, None))
    return from_arrays(x_train, y_train, x_test, y_test, x_val=x_val, y_val=y_val, source=source, **options)


def from_frame(
    train_df: Any, test_df: Any, *,
    label: str,
    val_df: Any = None,
    groups: Sequence[str] = (),
    meta: Sequence[str] = (),
    features: Sequence[str] | None = None,
    name: str = "frame", seed: int = 0, val_fraction: float = VAL_FRACTION,
    description: str = "", source: str = "Task.from_frame",
) -> Task:
    """A tabular Task from pandas DataFrames of raw rows, encoded like a table file.

    The columns go through ``sources.table_task`` (so the same
    ``TablePipeline``, fitted on the train rows, and the same checks as
    ``load_table``); ``label``, ``groups``, ``meta`` and ``features`` mean
    what they mean in a study file's ``[task]``. Without ``val_df``,
    ``val_fraction`` of the train rows become validation, stratified, with ``seed``.

    Raises:
        DataError: one line naming the frame (``test_df``), the problem and the fix.
    """
    import pandas as pd

    frames = {s: f for s, f in (("train", train_df), ("val", val_df), ("test", test_df)) if f is not None}
    for s, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{source}: {s}_df is a {type(frame).__name__}; give a pandas DataFrame of raw rows")
    columns = [str(c) for c in train_df.columns]
    _column(train_df, label, f"{source}(train_df)", "label")
    for s, frame in frames.items():
        missing, extra = [c for c in columns if c not in frame.columns], [str(c) for c in frame.columns if c not in train_df.columns]
        if missing or extra:
            raise DataError(f"{source}: {s}_df " + (f"lacks columns {missing} that train_df has" if missing else f"has columns {extra} that train_df lacks")
                            + "; every split needs the same columns")
        reserved = {label, *groups}
        _refuse_infinite(frame, list(features) if features is not None else [c for c in columns if c not in reserved], f"{source}({s}_df)")
    labelled = train_df[label].notna().to_numpy()
    train_labels = train_df[label][labelled].astype(str)
    refuse_one_class(train_labels.nunique(), f"train_df['{label}']", source)
    split_of = {s: np.full(len(f), s, dtype=object) for s, f in frames.items()}
    if val_df is None:  # carve validation from the labelled train rows; unlabelled ones are dropped by table_task
        codes = np.unique(train_labels.to_numpy(), return_inverse=True)[1]
        _, val, rule = carve_validation(codes, seed=seed, source=source, fraction=val_fraction)
        split_of["train"][np.flatnonzero(labelled)[val]] = "val"
    else:
        rule = "given train/val/test"
    order = [s for s in SPLITS if s in frames]
    column = next(c for c in ("split", "_split", "__assay_split__") if c not in columns)
    frame = pd.concat([frames[s] for s in order], ignore_index=True)
    frame[column] = np.concatenate([split_of[s] for s in order])
    task = table_task(frame, label=label, groups=groups, meta=meta, features=features, split_column=column, name=name, source=source, seed=seed,
                      description=description or f"Rows given in memory: predict '{label}'.", info={"split rule": rule})
    return with_shared_rows(dataclasses.replace(task, origin="in_memory"))


# --- helpers ------------------------------------------------------------------
def _array(value: Any, key: str, source: str) -> np.ndarray | None:
    """``value`` as a numpy array (a torch tensor is moved to the CPU first); ``None`` stays ``None``."""
    if value is None:
        return None
    if hasattr(value, "detach"):  # a torch tensor, perhaps on a GPU
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise DataError(f"{source}: {key} cannot be read as an array ({str(error).splitlines()[0]}); give a numpy array, tensor or list of equal-shaped rows") from None


def _text_pipeline(x_all: dict[str, np.ndarray | None], y_all: Mapping[str, np.ndarray | None], tokenizer: str | None,
                   max_length: int | None, source: str) -> Any:
    """The tokenizer of a text task, after checking each split's strings (made object arrays in ``x_all``) against its labels."""
    from .text import TextPipeline

    for s, x in x_all.items():
        y = y_all[s]
        if (x is None) != (y is None):
            raise DataError(f"{source}: has {'x' if y is None else 'y'}_{s} but no {'y' if y is None else 'x'}_{s}; give both or neither")
        if x is None:
            continue
        if x.ndim != 1 or (len(x) and not all(isinstance(t, str) for t in x.tolist())):
            raise DataError(f"{source}: x_{s} has shape {x.shape} and dtype {x.dtype}; for modality 'text' give one string per example, shape (N,)")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{source}: x_{s} has {len(x)} texts but y_{s} has shape {y.shape}; give one label per text")
        x_all[s] = x.astype(object)
    if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
        raise DataError(f"{source}: max_length={max_length!r}; give the tokens kept per text as an integer >= 2 (e.g. 64)")
    return TextPipeline(tokenizer or "minilm", max_length=max_length or 64)


def _inputs(x: np.ndarray, kind: str) -> np.ndarray:
    x = as_inputs(x, kind)
    return x[:, None] if kind == "image" and x.ndim == 3 else x  # (N, H, W) -> (N, 1, H, W)


def _labels(y_all: Mapping[str, np.ndarray | None], class_names: Sequence[str] | None, source: str) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Class names and integer labels per split: strings name classes, integers index ``class_names`` when given."""
    given = {s: _label_values(y, f"y_{s}", source) for s, y in y_all.items() if y is not None}
    kinds = {s: isinstance(v[0], str) for s, v in given.items() if len(v)}
    if len(set(kinds.values())) > 1:
        text = next(s for s, k in kinds.items() if k)
        number = next(s for s, k in kinds.items() if not k)
        raise DataError(f"{source}: y_{text} holds strings but y_{number} numbers; give labels of one kind in every split")
    if class_names is not None:
        names = tuple(str(c) for c in class_names)
        if len(set(names)) != len(names):
            raise DataError(f"{source}: class_names {list(names)} repeat a name; give each class one distinct name")
        strings = any(kinds.values())
        lookup = {c: i for i, c in enumerate(names)} if strings else {i: i for i in range(len(names))}
    else:
        values = sorted(set().union(*(set(v) for v in given.values())))
        names, lookup = tuple(str(v) for v in values), {v: i for i, v in enumerate(values)}
    encoded = {}
    for s, values in given.items():
        unknown = [v for v in values if v not in lookup]
        if unknown:
            shown = f"{list(names)}" if any(kinds.values()) else f"indices 0..{len(names) - 1} of {list(names)}"
            raise DataError(f"{source}: y_{s} holds label {unknown[0]!r} ({len(unknown)} row(s)) outside class_names {shown}; "
                            "add it to class_names or drop those rows")
        encoded[s] = np.array([lookup[v] for v in values], dtype=np.int64)
    return names, encoded


def _label_values(y: np.ndarray, key: str, source: str) -> list[Any]:
    """Labels as a list of Python ints or strings (whole floats become ints)."""
    values = y.tolist()
    if all(isinstance(v, str) for v in values):
        return values
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise DataError(f"{source}: {key} mixes strings with other values; give class names (strings) or class indices (integers)") from None
    wrong = next((v for v in numbers if not np.isfinite(v) or v != round(v)), None)
    if wrong is not None:
        raise DataError(f"{source}: {key} holds {wrong!r}, not a class; give class indices (integers) or class names (strings)")
    return [int(v) for v in numbers]


def _groups(groups: Mapping[str, Mapping[str, Any]], x_all: Mapping[str, np.ndarray | None], source: str) -> dict[str, dict[str, np.ndarray]]:
    """Per split, the group attributes as strings, each checked to give one value per row."""
    out: dict[str, dict[str, np.ndarray]] = {s: {} for s in x_all}
    for attribute, by_split in groups.items():
        if not isinstance(by_split, Mapping):
            raise DataError(f"{source}: groups['{attribute}'] is a {type(by_split).__name__}; give a mapping of split to values, "
                            f"e.g. {{'train': ..., 'test': ...}}")
        for s, x in x_all.items():
            if x is None:
                continue
            if s not in by_split:
                raise DataError(f"{source}: groups['{attribute}'] has no '{s}' values; give one value per row of x_{s}")
            values = np.asarray(_array(by_split[s], f"groups['{attribute}']['{s}']", source)).astype(str)
            if values.shape != (len(x),):
                raise DataError(f"{source}: groups['{attribute}']['{s}'] has shape {values.shape} for {len(x)} rows of x_{s}; give one value per row")
            out[s][str(attribute)] = values
    return out


def _unpack(dataset: Any, split: str, source: str) -> tuple[np.ndarray, list[Any]]:
    """Inputs stacked ``(N, ...)`` and labels of a dataset of ``(input, label)`` pairs."""
    items = (dataset[i] for i in range(len(dataset))) if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__") else iter(dataset)
    inputs, labels = [], []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(f"{source}: {split}[{i}] is {type(item).__name__}{'' if not isinstance(item, (tuple, list)) else f' of {len(item)}'}; "
                            "a Dataset must give (input, label) pairs")
        x, label = item
        x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
        if inputs and x.shape != inputs[0].shape:
            raise DataError(f"{source}: {split}[{i}] has input shape {x.shape} but {split}[0] has {inputs[0].shape}; "
                            "every input needs the same shape (resize or pad them)")
        inputs.append(x)
        labels.append(label.item() if hasattr(label, "item") else label)
    if not inputs:
        raise DataError(f"{source}: the {split} dataset is empty; give it (input, label) pairs")
    return np.stack(inputs), labels
