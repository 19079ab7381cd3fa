"""Test rows that also appear in train or validation: counted, shown with the task, never refused.

A test row the model was trained or selected on measures memory, not
generalisation. Every loader (``Task.from_arrays``/``from_frame``, CSV/Parquet,
NPZ, image folders) records how many test rows equal, input for input, a row of
train or validation, in ``Task.info[SHARED_ROWS]`` (``Task.summary`` and so the
report show it), and logs a warning when there are any. Rows compare by the
bytes of the inputs the model is given (encoded table rows, pixels after
resizing, token ids), through a 16-byte digest per row, so neither split is
held twice in memory; a lazy image folder is decoded a batch at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .task import Task

_log = logging.getLogger(__name__)

SHARED_ROWS = "test rows also in train/val"
_BATCH = 512  # rows read at a time (a lazy image folder decodes this many files at once)


def _row_digests(x: Any) -> Iterator[bytes]:
    """One digest per row of ``x`` (an array, or anything sliced into arrays such as ``LazyImages``)."""
    for start in range(0, len(x), _BATCH):
        batch = np.ascontiguousarray(np.asarray(x[start:start + _BATCH]))
        for row in batch.reshape(len(batch), -1):  # (B, D)
            yield hashlib.blake2b(row.tobytes(), digest_size=16).digest()


def shared_rows(seen: Sequence[Any], test: Any) -> int:
    """How many rows of ``test`` equal, byte for byte, a row of one of the arrays in ``seen``.

    An array of another row shape or dtype than ``test`` shares no row with it.
    """
    keys = {d for x in seen if x.shape[1:] == test.shape[1:] and x.dtype == test.dtype for d in _row_digests(x)}
    return sum(d in keys for d in _row_digests(test)) if keys else 0


def with_shared_rows(task: Task, *, after: str = "") -> Task:
    """``task`` with the count of test rows also in train or val in its ``info`` (the report shows it), warned when above zero.

    Validation counts too: it was train before a split was carved from it,
    and selection reads it, so a test row there is no more unseen.

    Args:
        after: what changed the rows since the loader counted them (e.g. ``"the task's transforms"``), named in the
            warning so a second count is not read as a contradiction of the first.
    """
    n = shared_rows([task.train.x, task.val.x], task.test.x)
    if n:
        _log.warning("%s: %s%d of %d test rows also appear in train or val; test accuracy on them measures memory, not generalisation",
                     task.info.get("source", task.name), f"after {after}, " if after else "", n, len(task.test))
    return dataclasses.replace(task, info={**task.info, SHARED_ROWS: n})
