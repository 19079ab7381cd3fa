"""The ``train`` recipe: an architecture from the zoo, trained from scratch through the one loop.

The loop itself is ``loop.fit`` (with ``checkpoint.Checkpoint`` and the other
callbacks), reached through ``RecipeContext.fit``; the training parameters are
declared once in ``options.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..models import zoo
from ..models.candidate import Candidate, Provenance
from .base import RecipeContext, check_trainable, register_recipe
from .options import TrainingRecipe, checked_arch, training_options


@register_recipe
@training_options(epochs=60, batch_size=64, lr=3e-3, weight_decay=0.05, warmup_epochs=1, patience=10, label_smoothing=0.0)
class Train(TrainingRecipe):
    """Train an architecture from the zoo from scratch.

    Study file::

        [[recipe]]
        name = "cnn"
        kind = "train"
        arch = "cnn"
        arch_options = { channels = [32, 64, 128] }
        epochs = 60
    """

    kind = "train"
    arch: str = "mlp"
    arch_options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.arch_options = checked_arch(self.arch, self.arch_options)

    def check_task(self, task, where: str) -> None:
        check_trainable(self.arch, self.arch_options, task, self.batch_size, where)

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        torch.manual_seed(context.seed)
        np.random.seed(context.seed % 2**32)
        options = arch_options_for(task, self.arch, self.arch_options, f"[[recipe]] '{name}'")
        model = zoo.build(self.arch, input_shape=task.input_shape, num_classes=task.num_classes, where=f"[[recipe]] '{name}'", **options)
        summary = context.fit(model, task.train, task.val, self.train_config())
        arch = {"name": self.arch, "input_shape": list(task.input_shape), "num_classes": task.num_classes, **_jsonable(options)}
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest())
        return Candidate(name, model.cpu(), provenance, training=summary)


def arch_options_for(task, arch: str, options: dict[str, Any], where: str) -> dict[str, Any]:
    """Architecture options completed from the task: token models size their embedding from its tokenizer."""
    options = dict(options)
    if task.modality == "text":
        if arch not in zoo.TOKEN_ARCHITECTURES:
            from ..errors import SpecError

            raise SpecError(f"{where}: arch '{arch}' cannot read text; use {' or '.join(zoo.TOKEN_ARCHITECTURES)}, or kind = \"transfer\"")
        options.setdefault("vocab_size", task.pipeline.vocab_size)
    return options


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in options.items()}
