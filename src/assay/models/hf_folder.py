"""A local Hugging Face folder (config.json + weights + tokenizer) as a classifier of a text task, read offline.

A text task holds token ids made by its own tokenizer (``data/text.py``), not
the strings: decoding them back is lossy (an uncased tokenizer lowercases,
long texts are truncated), so a folder is accepted only when its tokenizer
is the task's (same vocabulary, normalisation, pre-tokenisation and special
tokens), and then it is given the task's ids as they are. Its
``config.id2label`` must name the task's classes; its logits are reordered to
the task's class order. Nothing is downloaded (``local_files_only=True``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.task import Task
from ..data.text import model_folder
from ..errors import ModelError, require
from .pretrained import check_folder

# The parts of a tokenizer.json that decide which ids a text becomes (truncation and padding are the task's).
_TOKENIZING = ("normalizer", "pre_tokenizer", "model", "post_processor", "added_tokens")


class HFSequenceClassifier(nn.Module):
    """``AutoModelForSequenceClassification`` reading the task's token ids ``(B, T)`` into logits ``(B, K)`` in the task's class order.

    Args:
        model: the loaded transformers model.
        order: column ``j`` of the task's classes is column ``order[j]`` of the model's logits.
        pad_id: the task's padding id, masked out of attention.
    """

    def __init__(self, model: nn.Module, order: list[int], pad_id: int) -> None:
        super().__init__()
        self.model, self.pad_id = model, pad_id
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != self.pad_id).long()  # (B, T)
        logits = self.model(input_ids=ids, attention_mask=mask).logits  # (B, num_labels)
        return logits[:, self.order]


def load_hf_folder(folder: Path | str, task: Task, where: str) -> HFSequenceClassifier:
    """The folder's sequence classifier for ``task``, refused in one line when it cannot read the task's ids or name its classes.

    Raises:
        ModelError: the task is not text, the folder is incomplete or
            damaged, its tokenizer is not the task's, its labels are not the
            task's classes (both lists named), or it reads fewer tokens than the task holds.
    """
    folder = Path(folder)
    if task.modality != "text":
        raise ModelError(f"{where}: {folder} is a Hugging Face folder, which assay reads for text tasks; the task '{task.name}' is {task.modality}")
    check_folder(folder)
    _check_tokenizer(folder, task, where)
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for a hub
    transformers = require("transformers", "text")
    transformers.logging.set_verbosity_error()
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(f"{where}: {folder}: cannot load a sequence classifier ({str(error).splitlines()[0][:160]}); "
                         "save it with AutoModelForSequenceClassification.save_pretrained") from None
    config = model.config
    labels = [str(config.id2label[i]) for i in range(config.num_labels)]
    if sorted(labels) != sorted(task.class_names):
        raise ModelError(f"{where}: {folder}: its config.id2label names {labels}, the task's classes are {list(task.class_names)}; "
                         "set id2label (and label2id) in config.json to the task's class names")
    length = task.test.x.shape[1]
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and limit < length:
        raise ModelError(f"{where}: {folder}: it reads at most {limit} tokens, the task's texts hold {length}; use a task with max_length <= {limit}")
    return HFSequenceClassifier(model, [labels.index(c) for c in task.class_names], int(task.pipeline.pad_id))


def _check_tokenizer(folder: Path, task: Task, where: str) -> None:
    """Refuse a folder whose tokenizer would turn the task's texts into other ids than the ones the task holds."""
    ours = getattr(task.pipeline, "tokenizer", None)
    if ours is None:
        raise ModelError(f"{where}: the task '{task.name}' has no tokenizer, so a Hugging Face folder cannot be given its inputs")
    theirs = folder / "tokenizer.json"
    if _tokenizing(theirs) != _tokenizing(model_folder(ours) / "tokenizer.json"):
        raise ModelError(f"{where}: {folder}: its tokenizer.json differs from the task's tokenizer ({ours}); the task holds token ids, not texts, "
                         f"so assay judges only a model saved with the task's tokenizer (tokenizer.save_pretrained with '{ours}')")


def _tokenizing(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: cannot read the tokenizer ({str(error).splitlines()[0][:120]}); save it again with save_pretrained") from None
    return {key: spec.get(key) for key in _TOKENIZING}
