"""A local Hugging Face folder (config.json + weights + tokenizer) as a classifier of a text task, read offline.

A text task holds token ids made by its own tokenizer (``data/text.py``).
When the folder's tokenizer is the task's (same vocabulary, normalisation,
pre-tokenisation and special tokens), the model is given those ids as they
are (``HFSequenceClassifier``). Otherwise it is given the strings behind them
(``TextPipeline.recover``: the exact strings the task encoded, not a lossy
decoding) and tokenizes them itself, with its own maximum length, padding and
attention mask (``HFTextClassifier``); that model has no gradients with
respect to the task's ids. Its ``config.id2label`` must name the task's
classes; logits are reordered to the task's class order. Nothing is
downloaded (``local_files_only=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.task import Task
from ..data.text import TextFeed, model_folder
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
        self.assay_description = {"tokenizer": "the task's: reads its token ids as they are"}
        self.assay_notes = ["reads the task's token ids as they are (its tokenizer is the task's)"]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != self.pad_id).long()  # (B, T)
        logits = self.model(input_ids=ids, attention_mask=mask).logits  # (B, num_labels)
        return logits[:, self.order]


class HFTextClassifier(nn.Module):
    """``AutoModelForSequenceClassification`` with its own tokenizer: the task's token ids ``(B, T)`` -> their strings -> its tokens -> logits ``(B, K)``.

    Args:
        model: the loaded transformers model.
        tokenizer: the folder's own (fast) tokenizer.
        order: column ``j`` of the task's classes is column ``order[j]`` of the model's logits.
        feed: the task's ids -> the strings the task encoded (decoded rows warned and counted).
        max_length: tokens the model reads per text (its tokenizer's limit, within its position embeddings).
        digest: sha256 of the folder's tokenizer.json, part of the candidate's identity.
    """

    differentiable = False
    capability_reasons = {"differentiable": "it re-tokenizes the task's texts with its own tokenizer, so it has no gradients with respect to the task's token ids"}

    def __init__(self, model: nn.Module, tokenizer: Any, order: list[int], feed: TextFeed, max_length: int | None, digest: str) -> None:
        super().__init__()
        self.model, self.tokenizer, self.feed, self.max_length = model, tokenizer, feed, max_length
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.assay_description = {"tokenizer": f"its own: re-tokenizes the task's texts (max_length {max_length})", "tokenizer_sha256": digest}
        self.assay_notes = [f"re-tokenizes: given the task's texts (the strings the task encoded), tokenized with its own tokenizer, max_length {max_length}"]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        texts = self.feed(ids)
        if not texts:
            return torch.zeros((0, len(self.order)), device=ids.device)
        encoded = self.tokenizer(texts, padding=True, truncation=self.max_length is not None, max_length=self.max_length, return_tensors="pt")
        device = self.order.device
        logits = self.model(**{k: v.to(device) for k, v in encoded.items()}).logits  # (B, num_labels)
        return logits[:, self.order]


def load_hf_folder(folder: Path | str, task: Task, where: str) -> HFSequenceClassifier | HFTextClassifier:
    """The folder's sequence classifier for ``task``, refused in one line when it cannot be given the task's inputs or name its classes.

    Raises:
        ModelError: the task is not text, the folder is incomplete or
            damaged, its labels are not the task's classes (both lists named);
            with the task's tokenizer: it reads fewer tokens than the task
            holds; with its own: the task's test or validation texts cannot be
            recovered exactly from their token ids.
    """
    folder = Path(folder)
    if task.modality != "text":
        raise ModelError(f"{where}: {folder} is a Hugging Face folder, which assay reads for text tasks; the task '{task.name}' is {task.modality}")
    check_folder(folder)
    same = _same_tokenizer(folder, task, where)
    if not same:
        _check_texts(folder, task, where)
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
    order = [labels.index(c) for c in task.class_names]
    limit = getattr(config, "max_position_embeddings", None)
    if not same:
        tokenizer = _own_tokenizer(transformers, folder, where)
        told = tokenizer.model_max_length if tokenizer.model_max_length < 1e6 else None  # transformers' "unset" is a huge number
        known = [n for n in (told, limit) if n is not None]
        max_length = min(known) if known else None
        feed = TextFeed(task.pipeline, f"{where}: {folder}")
        return HFTextClassifier(model, tokenizer, order, feed, max_length, _file_digest(folder / "tokenizer.json")).eval()
    length = task.test.x.shape[1]
    if limit is not None and limit < length:
        raise ModelError(f"{where}: {folder}: it reads at most {limit} tokens, the task's texts hold {length}; use a task with max_length <= {limit}")
    return HFSequenceClassifier(model, order, int(task.pipeline.pad_id)).eval()  # a saved classifier is judged as it predicts


def _same_tokenizer(folder: Path, task: Task, where: str) -> bool:
    """Whether the folder's tokenizer turns the task's texts into the very ids the task holds."""
    ours = getattr(task.pipeline, "tokenizer", None)
    if ours is None:
        raise ModelError(f"{where}: the task '{task.name}' has no tokenizer, so a Hugging Face folder cannot be given its inputs")
    return _tokenizing(folder / "tokenizer.json") == _tokenizing(model_folder(ours) / "tokenizer.json")


def _check_texts(folder: Path, task: Task, where: str) -> None:
    """A folder with its own tokenizer reads the task's strings: refuse when the judged splits' strings are not all there to give it.

    Texts the task's pipeline never encoded in this process (a pipeline
    restored from a pickle keeps no strings) would reach the model only as
    lossy decodings, so every verdict would be about other inputs: refused.
    Texts the task's tokenizer cannot tell apart (two that differ only in case,
    or past its max_length) are decoded: warned, with the count, since no
    input to the task holds more than those ids.
    """
    recover = getattr(task.pipeline, "recover", None)
    if not callable(recover):
        raise ModelError(f"{where}: {folder}: its tokenizer is not the task's and the task's pipeline cannot give back its texts; "
                         f"save the folder with the task's tokenizer ({getattr(task.pipeline, 'tokenizer', '?')})")
    for split in ("test", "val"):
        data = task.split(split)
        found = recover(data.x)
        unseen = found.decoded - int(found.ambiguous.sum())
        if unseen:
            raise ModelError(f"{where}: {folder}: its tokenizer is not the task's, so it is given the task's texts, but {unseen} of {len(data.x)} {split} texts "
                             "were not encoded by the task's tokenizer in this process (a pipeline loaded from a file keeps ids, not texts); "
                             f"build the task in this process, or save the folder with the task's tokenizer ('{task.pipeline.tokenizer}')")
        if found.decoded:
            warnings.warn(f"{where}: {folder}: {split}: {found.why()}", UserWarning, stacklevel=3)


def _own_tokenizer(transformers: Any, folder: Path, where: str) -> Any:
    try:
        return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{where}: {folder}: cannot load its tokenizer ({str(error).splitlines()[0][:160]}); save it with tokenizer.save_pretrained") from None


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tokenizing(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: cannot read the tokenizer ({str(error).splitlines()[0][:120]}); save it again with save_pretrained") from None
    return {key: spec.get(key) for key in _TOKENIZING}
