"""The ``train`` recipe: an architecture from the zoo, or the user's own, trained from scratch through the one loop.

The loop itself is ``loop.fit`` (with ``checkpoint.Checkpoint`` and the other
callbacks), reached through ``RecipeContext.fit``; the training parameters are
declared once in ``options.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._options import CodeRef
from ..errors import ModelError
from ..models import user_code, zoo
from ..models.candidate import Candidate, Provenance
from ..models.inputs import as_input
from .base import RecipeContext, check_trainable, register_recipe
from .options import TrainingRecipe, checked_arch, training_options


@register_recipe
@training_options(epochs=60, batch_size=64, lr=3e-3, weight_decay=0.05, warmup_epochs=1, patience=10, label_smoothing=0.0)
class Train(TrainingRecipe):
    """Train an architecture from the zoo, or one of the user's own, from scratch.

    Study file::

        [[recipe]]
        name = "cnn"
        kind = "train"
        arch = "cnn"                       # or "models.py:make_net", or "package.module:make_net"
        arch_options = { channels = [32, 64, 128] }
        epochs = 60

    A user architecture is a callable called as ``make_net(input_shape,
    num_classes, **arch_options)`` that returns an ``nn.Module`` mapping a
    batch to logits; a ``.py`` file is relative to the study file, and
    importing it runs it (``models/user_code.py``). It trains with every
    option, checkpoint and resume of a built-in architecture.
    """

    kind = "train"
    arch: CodeRef = "mlp"  # a zoo name or a reference; the study loader joins only a .py file to the study's folder
    arch_options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if user_code.is_ref(self.arch):
            user_code.split_ref(self.arch)  # a reference that is neither a file nor a module is refused when the study is read
            self.arch_options = dict(self.arch_options or {})
            return
        if self.arch == "user":
            raise ValueError('arch "user" is written as the callable itself: arch = "models.py:make_net"')
        self.arch_options = checked_arch(self.arch, self.arch_options)

    def check_task(self, task, where: str) -> None:
        if user_code.is_ref(self.arch):  # build it once and run two real inputs through it, before anything trains
            model = self._user_model(task, where)
            user_code.check_outputs(model, as_input(task.train.x[:2]), task.num_classes, where, self.arch)
            return
        check_trainable(self.arch, self.arch_options, task, self.batch_size, where)

    def _user_model(self, task, where: str) -> torch.nn.Module:
        try:
            return zoo.build("user", input_shape=task.input_shape, num_classes=task.num_classes, where=where, **self._user_arch())
        except ModelError as error:  # user_code names the architecture; the study names the recipe
            raise ModelError(str(error).replace(f"arch 'user' ({self.arch})", where, 1)) from None

    def _user_arch(self) -> dict[str, Any]:
        """The ``user`` architecture's options: the reference, its source's hash now, and ``arch_options``."""
        return {"code": self.arch, "sha256": user_code.sha256_of(user_code.source_file(self.arch)), "options": _jsonable(self.arch_options)}

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        torch.manual_seed(context.seed)
        np.random.seed(context.seed % 2**32)
        where = f"[[recipe]] '{name}'"
        if user_code.is_ref(self.arch):
            model, options, arch_name = self._user_model(task, where), self._user_arch(), "user"
        else:
            options, arch_name = arch_options_for(task, self.arch, self.arch_options, where), self.arch
            model = zoo.build(self.arch, input_shape=task.input_shape, num_classes=task.num_classes, where=where, **options)
        summary = self.fit_model(model, context)
        arch = {"name": arch_name, "input_shape": list(task.input_shape), "num_classes": task.num_classes, **_jsonable(options)}
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest())
        return Candidate(name, model.cpu(), provenance, training=summary)


    def fit_model(self, model: torch.nn.Module, context: RecipeContext) -> dict[str, Any]:
        """Train the built ``model``; a recipe that trains the same architectures with another objective overrides this."""
        return context.fit(model, context.task.train, context.task.val, self.train_config())


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
