"""Where an attacker may move an input: the valid range, the features that may move, and the unit of epsilon.

``constraint_for`` builds it from the task (see ``Constraint``): images stay
on [0, 1]; signals and table columns stay within the range the training
split spans; only numeric table columns move (one-hot columns are masked
out); a token model is attacked in the space of its token embeddings. The
white-box attacks (``attacks.py``) and Square Attack (``square_attack.py``)
both project onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import gradients as grad


@dataclass(frozen=True)
class Constraint:
    """Where an attack may move an input, in gradient space (inputs, or token embeddings).

    Attributes:
        low, high: the valid range, broadcastable to one batch (``None``: unbounded). A clean input outside
            it is never pulled back in: the range is widened to include it, so only the attack moves anything.
        mask: 1 where a feature may move, 0 where it is fixed (one-hot columns); ``None``: everything moves.
        scale: the unit of epsilon: the radius is ``eps * scale``.
        space: ``input`` or ``embedding`` (a token model: the attack perturbs its token embeddings).
        unit: what epsilon is measured in, for the evidence.
    """

    low: torch.Tensor | None = None
    high: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    scale: float = 1.0
    space: str = "input"
    unit: str = "input units"

    def masked(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.mask is None else t * self.mask.to(t.device, t.dtype)

    def bounds(self, x: torch.Tensor) -> tuple[torch.Tensor | float | None, torch.Tensor | float | None]:
        """The valid range around clean inputs ``x``, widened to hold them: computed once per attack, used at every step.

        A scalar bound that already holds every clean value stays a number, so each step clamps by a scalar (images on [0, 1]).
        """
        def widened(bound: torch.Tensor | None, pick, holds) -> torch.Tensor | float | None:
            if bound is None:
                return None
            bound = bound.to(x.device, x.dtype)
            if bound.dim() == 0 and bool(holds(x, bound).all()):
                return float(bound)
            return pick(bound, x)

        return (widened(self.low, torch.minimum, lambda v, b: v >= b), widened(self.high, torch.maximum, lambda v, b: v <= b))

    def clip(self, adv: torch.Tensor, x: torch.Tensor, bounds: tuple | None = None) -> torch.Tensor:
        """``adv`` inside the valid range (widened to hold the clean ``x``)."""
        low, high = bounds or self.bounds(x)
        if low is None and high is None:
            return adv
        return torch.clamp(adv, min=low, max=high)

    def project(self, adv: torch.Tensor, x: torch.Tensor, radius: float | torch.Tensor, norm: str, bounds: tuple | None = None) -> torch.Tensor:
        """The nearest point to ``adv`` within ``radius`` of ``x`` (in ``norm``), with fixed features unmoved and the range kept.

        ``radius``: one for every row, or ``(N,)``, each row its own.
        """
        delta = self.masked(adv - x)
        radius = per_row(radius, delta)
        if norm == "linf":
            delta = torch.clamp(delta, -radius, radius) if isinstance(radius, torch.Tensor) else delta.clamp(-radius, radius)
        else:
            length = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))
            delta = delta * torch.clamp(radius / (length + 1e-12), max=1.0)
        return self.clip(x + delta, x, bounds)


def constraint_for(task, model: nn.Module) -> Constraint:
    """The constraint of ``task``'s modality (see the module docstring), for attacks on ``model``.

    Raises:
        ModelError: a text task whose model has no token embedding layer (there is no continuous space to attack).
    """
    from ..errors import ModelError

    train = task.train.x
    if task.modality == "text":
        layer = grad.embedding_layer(model)
        if layer is None:
            raise ModelError(f"{type(model).__name__}: a text model without a token embedding layer has no continuous input to attack")
        scale = float(layer.weight.detach().float().std())
        return Constraint(scale=scale, space="embedding", unit=f"the token embedding table's standard deviation ({scale:.3g})")
    if task.modality == "image":  # images are on [0, 1] throughout assay (loaders scale them; corruptions clip to it)
        return Constraint(torch.tensor(0.0), torch.tensor(1.0), unit="pixel values on [0, 1]")
    values = np.asarray(train, dtype=np.float32)
    if task.modality == "signal":
        std = float(values.std()) or 1.0
        return Constraint(torch.tensor(float(values.min())), torch.tensor(float(values.max())), scale=std,
                          unit=f"the training signals' standard deviation ({std:.3g}); values kept within their training range")
    # Tables: numeric columns move within each one's training range; one-hot columns of categories stay as they are.
    low, high = torch.from_numpy(values.min(0))[None], torch.from_numpy(values.max(0))[None]
    numeric = getattr(task.pipeline, "numeric", None)
    if numeric is None:
        return Constraint(low, high, unit="the table's own units (no pipeline standardised it); each column kept within its training range")
    mask = torch.zeros((1, values.shape[1]))
    mask[:, : len(numeric)] = 1.0  # the pipeline puts numeric columns first, then each category block
    return Constraint(low, high, mask, unit="standardised units of the numeric columns (one-hot columns fixed), each within its training range")


def per_row(value: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """A number as it is; an ``(N,)`` tensor shaped to broadcast over ``like``'s rows ``(N, 1, ...)``."""
    if not isinstance(value, torch.Tensor):
        return value
    return value.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1)))
