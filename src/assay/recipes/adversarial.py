"""The ``adversarial`` recipe: an architecture trained to resist attacks, through the one loop.

Two objectives, both trained by ``RecipeContext.fit`` with a ``loss`` of their own:

* ``method = "pgd"``: PGD adversarial training (Madry et al. 2018). Each batch
  is replaced by its PGD examples (random start in the ball) and the model
  minimises their cross-entropy.
* ``method = "trades"``: TRADES (Zhang et al. 2019). Cross-entropy on the
  clean batch plus ``beta`` times ``KL(f(x) || f(x'))``, where ``x'`` is found
  by PGD ascending that KL inside the ball (from a random start: at ``x'`` =
  ``x`` its gradient is zero).

The attacks are ``models/attacks.py``'s, in the task's ``Constraint`` (images
stay on [0, 1], table one-hots stay fixed), so what the model trains against
is what the ``adversarial`` check measures. Early stopping and the kept
weights follow the validation loss *on PGD examples* of the validation split,
not the clean one: robust accuracy peaks early and then falls while clean
accuracy still rises ("robust overfitting", Rice et al. 2020).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .._options import above
from ..errors import SpecError
from ..models import attacks
from .base import RecipeContext, register_recipe
from .options import training_options
from .train import Train

METHODS = ("pgd", "trades")


@register_recipe
@training_options(**Train.training_defaults)
class Adversarial(Train):
    """Train an architecture on adversarial examples (PGD, Madry et al. 2018) or with TRADES (Zhang et al. 2019).

    Study file::

        [[recipe]]
        name = "cnn-pgd"
        kind = "adversarial"
        arch = "cnn"
        method = "pgd"        # or "trades"
        epsilon = 0.1         # the ball's radius, in the units the adversarial check uses
        steps = 7             # PGD steps per batch
        epochs = 30

    Every option of ``train`` applies (``arch``, ``arch_options``, the
    training parameters); the rest are the attack's.
    """

    kind = "adversarial"
    limits = {"epsilon": above(0), "step_size": above(0), "beta": above(0)}
    method: str = "pgd"
    epsilon: float = 0.1
    steps: int = 7
    step_size: float | None = None  # per step, as a share of the radius; None: 2.5 / steps (Madry et al.)
    norm: str = "linf"
    beta: float = 6.0  # TRADES' weight of the robustness term

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise ValueError(f"method = {self.method!r}; use one of {', '.join(METHODS)}")
        if self.norm not in attacks.NORMS:
            raise ValueError(f"norm = {self.norm!r}; use one of {', '.join(attacks.NORMS)}")

    def check_task(self, task, where: str) -> None:
        if task.modality == "text":
            raise SpecError(f"{where}: adversarial training moves the inputs, and a text model is attacked in its embedding space, "
                            "which this recipe does not train on; use kind = \"train\" for text")
        super().check_task(task, where)

    def fit_model(self, model: torch.nn.Module, context: RecipeContext) -> dict[str, Any]:
        """Train ``model`` with this recipe's adversarial objective (``Train.make`` builds it and calls this)."""
        constraint = attacks.constraint_for(context.task, model)
        rng = np.random.default_rng(context.seed)  # each batch's random start; checkpointed, so a resumed run draws the same
        smoothing = self.label_smoothing or 0.0

        def attack(model, x, target, loss=attacks.cross_entropy):
            return attacks.pgd(model, x, target, self.epsilon, constraint, norm=self.norm, steps=self.steps, step_size=self.step_size,
                               random_start=True, seed=int(rng.integers(2**31)), loss=loss).detach()

        def pgd_loss(model, x, y, index):
            return F.cross_entropy(model(attack(model, x, y)), y, label_smoothing=smoothing)

        def trades_loss(model, x, y, index):
            logits = model(x)
            adv = attack(model, x, F.softmax(logits.detach(), dim=1), loss=_kl_from)
            robust = F.kl_div(F.log_softmax(model(adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
            return F.cross_entropy(logits, y, label_smoothing=smoothing) + self.beta * robust

        def robust_evaluate(model, xv, yv):  # the same random start every epoch, so epochs compare on the same attack
            model.eval()
            adv = attacks.pgd(model, xv, yv, self.epsilon, constraint, norm=self.norm, steps=self.steps, step_size=self.step_size,
                              random_start=True, seed=context.seed)
            with torch.no_grad():
                logits = torch.cat([model(adv[i : i + 512]) for i in range(0, len(adv), 512)])
            return float(F.cross_entropy(logits, yv)), float((logits.argmax(1) == yv).float().mean())

        loss = pgd_loss if self.method == "pgd" else trades_loss
        return context.fit(model, context.task.train, context.task.val, self.train_config(), loss=loss, evaluate=robust_evaluate,
                           generators={"attack": rng})


def _kl_from(logits: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-row ``KL(clean || softmax(logits))``: what TRADES' inner attack ascends."""
    return F.kl_div(F.log_softmax(logits, dim=1), clean, reduction="none").sum(1)
