"""The ``distill`` recipe: a smaller student trained to imitate a teacher.

The loss is Hinton, Vinyals & Dean (2015): ``alpha * T^2 * KL(teacher_T ||
student_T) + (1 - alpha) * CE(student, labels)``, where ``_T`` means a
softmax at temperature ``T``; the ``T^2`` keeps the soft term's gradients on
the scale of the hard one. The teacher's logits are computed once over the
training split (unaugmented inputs, so they are fixed targets) and indexed
per batch inside the one training loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import zoo
from ..models.candidate import Candidate
from ..models.forward import forward_pass
from .base import RecipeContext, check_trainable, derived_provenance, register_recipe
from .options import TrainingRecipe, checked_arch, training_options
from .train import _jsonable, arch_options_for


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al. (2015) knowledge-distillation loss, averaged over the batch."""
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1), F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def teacher_logits(teacher: Candidate, x, batch_size: int = 256) -> torch.Tensor:
    """The teacher's logits for every row of ``x``, on the CPU."""
    return forward_pass(teacher.model, x, batch_size=batch_size, device=teacher.device).logits


@register_recipe
@training_options(epochs=60, batch_size=64, lr=3e-3, weight_decay=0.05, patience=10)
class Distill(TrainingRecipe):
    """Train ``arch`` (from the zoo) to match the parent's (the teacher's) outputs.

    Study file::

        [[recipe]]
        name = "cnn-student"
        kind = "distill"
        parent = "cnn"
        arch = "cnn"
        arch_options = { channels = [8, 16, 32] }
        temperature = 4.0
        alpha = 0.9
    """

    kind = "distill"

    parent: str
    arch: str = "mlp"
    arch_options: dict[str, Any] | None = None
    temperature: float = 4.0
    alpha: float = 0.9

    def __post_init__(self) -> None:
        self.arch_options = checked_arch(self.arch, self.arch_options)
        if self.temperature <= 0 or not 0 <= self.alpha <= 1:
            raise ValueError(f"'temperature' must be positive and 'alpha' in [0, 1], got {self.temperature} and {self.alpha}")

    def check_task(self, task, where: str) -> None:
        check_trainable(self.arch, self.arch_options, task, self.batch_size, where)

    def make(self, name: str, context: RecipeContext) -> Candidate:
        teacher = context.parent(self.parent, f"[[recipe]] '{name}'")
        task = context.task
        where = f"[[recipe]] '{name}'"
        targets = teacher_logits(teacher.to(context.device), task.train.x).to(context.device)
        torch.manual_seed(context.seed)
        np.random.seed(context.seed % 2**32)
        options = arch_options_for(task, self.arch, self.arch_options, where)
        student = zoo.build(self.arch, input_shape=task.input_shape, num_classes=task.num_classes, where=where, **options)

        def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return distillation_loss(model(x), targets[index], y, self.temperature, self.alpha)

        summary = context.fit(student, task.train, task.val, self.train_config(), loss=loss)
        arch = {"name": self.arch, "input_shape": list(task.input_shape), "num_classes": task.num_classes, **_jsonable(options)}
        return Candidate(name, student.cpu(), derived_provenance(teacher, self, arch=arch), training=summary)
