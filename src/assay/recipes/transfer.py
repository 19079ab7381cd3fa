"""The ``transfer`` recipe: start from a pretrained encoder.

Strategies:
  * ``linear-probe``: the encoder stays frozen; its embeddings of each split
    are computed once and cached in the run folder (shared by every probe of
    the run), and a linear head is trained on them with the one training loop.
  * ``finetune``: every weight trains, optionally with layer-wise learning-rate
    decay (lower layers move less; Howard & Ruder 2018, Clark et al. 2020).
  * ``lora``: low-rank adapters on the attention projections through ``peft``
    (Hu et al. 2022), merged into the weights afterwards.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_path
from ..data.task import Split, Task
from ..errors import SpecError, require
from ..models import zoo
from ..models.candidate import Candidate, Provenance
from ..models.forward import forward_pass
from ..data.text import model_folder
from ..models.pretrained import check_folder, weights_digest
from .base import RecipeContext, register_recipe
from .options import TrainConfig, TrainingRecipe, training_options

STRATEGIES = ("linear-probe", "finetune", "lora")
_DEFAULT_LR = {"linear-probe": 1e-2, "finetune": 5e-5, "lora": 5e-4}


def encode_splits(model: nn.Module, task: Task, splits: tuple[str, ...], cache: Path | None, key: str, batch: int = 128) -> dict[str, np.ndarray]:
    """A frozen encoder's features (``model``'s penultimate layer) of each split, read from ``cache`` when there, else computed once and stored."""
    out = {}
    for split in splits:
        path = None if cache is None else cache / f"{key}-{task.split(split).digest()[:16]}.npy"
        x = task.split(split).x
        if path is not None and path.is_file():
            try:
                cached = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:  # truncated or foreign: computed again
                cached = None
                logging.getLogger("assay").warning("%s: damaged feature cache (%s); computing the features again", path, str(error).splitlines()[0][:120])
            if cached is not None and cached.ndim == 2 and len(cached) == len(x) and np.isfinite(cached).all():
                out[split] = cached
                continue
        out[split] = forward_pass(model, x, batch_size=batch, logits=False, features=True).features.numpy()
        if path is not None:
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, out[split])
    return out


@register_recipe
@training_options(epochs=None, batch_size=32, lr=None, weight_decay=0.01, patience=None)
class Transfer(TrainingRecipe):
    """Transfer from a pretrained text encoder.

    Study file::

        [[recipe]]
        name = "minilm-probe"
        kind = "transfer"
        encoder = "minilm"
        strategy = "linear-probe"     # or "finetune", "lora"
    """

    kind = "transfer"

    encoder: str = "minilm"
    strategy: str = "linear-probe"
    layer_decay: float = 1.0
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list[str] | tuple[str, ...] = ("query", "value")

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy '{self.strategy}'; use one of {', '.join(STRATEGIES)}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"'layer_decay' must be in (0, 1], got {self.layer_decay}")
        self.lora_targets = list(self.lora_targets)

    def _config(self) -> TrainConfig:
        """Unset epochs, lr and patience take the strategy's defaults: a probe trains long and fast, a fine-tune briefly and gently."""
        probe = self.strategy == "linear-probe"
        return self.train_config(
            epochs=self.epochs or (200 if probe else 4),
            lr=self.lr or _DEFAULT_LR[self.strategy],
            warmup_epochs=1 if probe else 0,
            patience=self.patience or (20 if probe else 2),
        )

    def check_task(self, task: Task, where: str) -> None:
        """Text only, a readable encoder folder, and the task tokenized for this encoder: all known before training."""
        if task.modality != "text":
            raise SpecError(f"{where}: transfer needs a text task here (no pretrained {task.modality} encoder is installed); use kind = \"train\" or \"selfsup\"")
        check_folder(model_folder(self.encoder))
        tokenizer = getattr(task.pipeline, "tokenizer", None)
        if tokenizer != self.encoder:
            raise SpecError(f"{where}: the task is tokenized for '{tokenizer}' but the encoder is '{self.encoder}'; they must match")

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        where = f"[[recipe]] '{name}'"
        if task.modality != "text":
            raise SpecError(f"{where}: transfer needs a text task here (no pretrained {task.modality} encoder is installed); use kind = \"train\" or \"selfsup\"")
        check_folder(model_folder(self.encoder))  # a wrong folder is named before anything else
        tokenizer = getattr(task.pipeline, "tokenizer", None)
        if tokenizer != self.encoder:
            raise SpecError(f"{where}: the task is tokenized for '{tokenizer}' but the encoder is '{self.encoder}'; they must match")
        torch.manual_seed(context.seed)
        model = zoo.build("pretrained", input_shape=task.input_shape, num_classes=task.num_classes, source=self.encoder,
                          frozen=self.strategy == "linear-probe", where=where)
        digest = weights_digest(self.encoder)
        summary = getattr(self, f"_{self.strategy.replace('-', '_')}")(model, name, context)
        arch = {"name": "pretrained", "input_shape": list(task.input_shape), "num_classes": task.num_classes, "source": self.encoder,
                "frozen": self.strategy == "linear-probe", "weights_sha256": digest}
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest())
        return Candidate(name, model.cpu().eval(), provenance, training=summary)

    def _linear_probe(self, model, name: str, context: RecipeContext) -> dict[str, Any]:
        task = context.task
        feats = encode_splits(model, task, ("train", "val"), context.shared_dir, f"{self.encoder}")
        summary = context.fit(model.head, Split(feats["train"], task.train.y), Split(feats["val"], task.val.y), self._config())
        return {**summary, "trainable_parameters": sum(p.numel() for p in model.head.parameters()),
                "total_parameters": sum(p.numel() for p in model.parameters())}

    def _finetune(self, model, name: str, context: RecipeContext) -> dict[str, Any]:
        groups = _layerwise_groups(model, self._config().lr, self.layer_decay)
        return self._fit_all(model, name, context, groups)

    def _lora(self, model, name: str, context: RecipeContext) -> dict[str, Any]:
        peft = require("peft", "text")
        config = peft.LoraConfig(r=self.lora_rank, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout, target_modules=self.lora_targets)
        model.body.model = peft.get_peft_model(model.body.model, config)
        summary = self._fit_all(model, name, context, None)
        model.body.model = model.body.model.merge_and_unload()  # plain weights again: saved and served like any model
        return summary

    def _fit_all(self, model, name: str, context: RecipeContext, groups) -> dict[str, Any]:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        if context.progress:
            print(f"{name}: training {trainable:,} of {total:,} parameters ({trainable / total:.2%})")
        summary = context.fit(model, context.task.train, context.task.val, self._config(), param_groups=groups)
        return {**summary, "trainable_parameters": trainable, "total_parameters": total}


def _layerwise_groups(model: nn.Module, lr: float, decay: float) -> list[dict[str, Any]] | None:
    """AdamW groups where encoder layer i of L gets lr * decay**(L - i); embeddings the lowest, the head lr."""
    if decay == 1.0:
        return None
    names = [n for n, _ in model.named_parameters()]
    depth = 1 + max((int(m.group(1)) for n in names if (m := re.search(r"layer\.(\d+)\.", n))), default=0)
    groups: dict[float, list] = {}
    for n, p in model.named_parameters():
        m = re.search(r"layer\.(\d+)\.", n)
        level = int(m.group(1)) + 1 if m else (0 if "embeddings" in n else depth + 1)
        groups.setdefault(lr * decay ** (depth + 1 - level), []).append(p)
    return [{"params": ps, "lr": group_lr} for group_lr, ps in groups.items()]
