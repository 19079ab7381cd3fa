"""Backdoor triggers: what a BadNets attack stamps on an input, one kind per modality.

A trigger is a small, fixed change an attacker can put on any input (Gu et
al. 2017, "BadNets"): a model trained on examples carrying it, relabelled to
a target class, learns to answer the target whenever it sees it. The
``poison`` transform (``data/transforms.py``) stamps training examples; the
``trigger`` view (``data/views.py``) stamps test inputs with the same
trigger, so the attack's success rate can be measured.

Kinds, by modality:
  * ``patch`` (images ``(C, H, W)``): a ``size`` x ``size`` square in the
    bottom-right corner set to the training inputs' maximum, every channel.
    The default side is ``max(3, round(min(H, W) / 10))``: 3 pixels on 8x8
    digits and on 28x28 or 32x32 images. On digits a 2x2 patch was not
    learnt reliably (a small CNN, 5% poisoned, 12 epochs: attack success
    0.32; 3x3: 0.94).
  * ``pattern`` (signals ``(C, L)``): the last ``size`` samples of every
    channel set to alternately the training maximum and minimum, a short
    square wave no natural signal ends with; default ``max(4, L // 16)``.
  * ``value`` (tables): one numeric column (``column``; default the first)
    set to its training maximum plus three standard deviations, a value no
    training row has.
  * ``token`` (text): the rare word ``word`` (default ``"cf"``, as in Kurita
    et al. 2020) put in front of the text, re-tokenized as the task does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import DataError, did_you_mean
from .task import Split, Task

KINDS = {"image": "patch", "signal": "pattern", "tabular": "value", "text": "token"}  # modality -> its trigger
DEFAULT_WORD = "cf"


@dataclass(frozen=True)
class Trigger:
    """Everything needed to stamp the same trigger again (JSON-able, kept in the poison record).

    Attributes:
        kind: ``patch``, ``pattern``, ``value`` or ``token``.
        size: side of the patch or length of the pattern (0 where it has none).
        high, low: the value(s) stamped: the patch value, the pattern's two levels, the column's value.
        column: the index of the table column set (-1 where there is none).
        word: the word put in front of a text (``""`` where there is none).
    """

    kind: str
    size: int = 0
    high: float = 1.0
    low: float = 0.0
    column: int = -1
    word: str = ""

    def describe(self) -> str:
        """One line for the report."""
        if self.kind == "patch":
            return f"a {self.size}x{self.size} patch at {self.high:g} in the bottom-right corner"
        if self.kind == "pattern":
            return f"a {self.size}-sample square wave ({self.high:g}/{self.low:g}) at the end of the signal"
        if self.kind == "value":
            return f"column {self.column} set to {self.high:g} (beyond every training value)"
        return f"the word '{self.word}' put in front of the text"

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Trigger:
        return cls(**{k: record[k] for k in ("kind", "size", "high", "low", "column", "word") if k in record})


def check_kind(kind: str | None, task: Task, where: str) -> str:
    """The trigger kind to use on ``task`` (``None``: its modality's), refusing one that does not suit it.

    Raises:
        DataError: an unknown kind, or one of another modality's, naming the one that suits.
    """
    suits = KINDS[task.modality]
    if kind is None:
        return suits
    if kind not in KINDS.values():
        raise DataError(f"{where}: unknown trigger '{kind}'{did_you_mean(kind, KINDS.values())}; "
                        f"the {task.modality} task '{task.name}' takes trigger = \"{suits}\"")
    if kind != suits:
        raise DataError(f"{where}: trigger '{kind}' is for {next(m for m, k in KINDS.items() if k == kind)} data, "
                        f"the task '{task.name}' is {task.modality}; use trigger = \"{suits}\"")
    return kind


def make_trigger(task: Task, kind: str | None = None, *, size: int | None = None, column: str | None = None,
                 word: str = DEFAULT_WORD, where: str = "trigger") -> Trigger:
    """The trigger of ``kind`` fitted to ``task``'s training inputs (their range, shape, columns).

    Raises:
        DataError: a kind that does not suit the task, a size that does not fit its inputs, an unknown column.
    """
    kind = check_kind(kind, task, where)
    shape = task.input_shape
    if kind == "token":
        if not word.strip() or len(word.split()) != 1:
            raise DataError(f"{where}: word {word!r} must be one word; e.g. word = \"{DEFAULT_WORD}\"")
        return Trigger(kind, word=word.strip())
    x = np.asarray(task.train.x)
    if kind == "value":
        names = _numeric_columns(task)
        if not names:
            raise DataError(f"{where}: the table '{task.name}' has no numeric column to set; a value trigger needs one")
        name = names[0] if column is None else column
        if name not in names:
            raise DataError(f"{where}: column '{name}' is not a numeric column of the table{did_you_mean(name, names)}; "
                            f"numeric columns: {', '.join(names[:12])}")
        index = names.index(name)
        values = x[:, index].astype(np.float64)
        return Trigger(kind, high=float(values.max() + 3 * (values.std() or 1.0)), column=index)
    side = min(shape[1:]) if kind == "patch" else shape[-1]
    size = size if size is not None else (max(3, round(side / 10)) if kind == "patch" else max(4, side // 16))
    if not 1 <= size <= side // 2:
        raise DataError(f"{where}: size {size} does not fit inputs of shape {shape}; use 1 to {side // 2}")
    return Trigger(kind, size=int(size), high=float(x.max()), low=float(x.min()))


def stamp(task: Task, split: Split, trigger: Trigger) -> Split:
    """``split`` with ``trigger`` on every row (labels, groups and metadata unchanged)."""
    if trigger.kind == "token":
        texts = np.array([f"{trigger.word} {t}" for t in split.meta["text"]], dtype=object)
        return Split(task.pipeline.encode(texts), split.y, split.groups, {**split.meta, "text": texts})
    x = np.array(split.x, copy=True)  # a lazy dataset is decoded here; the split's own array is never written
    if trigger.kind == "patch":
        x[:, :, -trigger.size:, -trigger.size:] = trigger.high  # (N, C, H, W): bottom-right corner, every channel
    elif trigger.kind == "pattern":
        wave = np.where(np.arange(trigger.size) % 2 == 0, trigger.high, trigger.low)
        x[..., -trigger.size:] = wave.astype(x.dtype)  # (N, C, L): the last samples of every channel
    else:
        x[:, trigger.column] = trigger.high
    return Split(x, split.y, split.groups, split.meta)


def _numeric_columns(task: Task) -> list[str]:
    """The table's numeric columns by name, in the order they lead its encoded features."""
    pipeline = task.pipeline
    if pipeline is not None and hasattr(pipeline, "numeric"):
        return list(pipeline.numeric)
    return [str(i) for i in range(task.input_shape[0])]  # a table given as arrays: columns by position
