"""Square Attack (Andriushchenko et al. 2020): the black-box attack, for models without usable gradients.

It only calls ``predict`` (logits of a batch), so it attacks int8 kernels,
ONNX Runtime graphs, tree ensembles and black boxes alike, within the same
``Constraint`` as the white-box attacks of ``attacks.py``.
"""

from __future__ import annotations

import math

import torch

from .attacks import Constraint, Predict, margin


def square(predict: Predict, x: torch.Tensor, y: torch.Tensor, eps: float, constraint: Constraint, *, queries: int = 300,
           p_init: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Square Attack, L-inf (Andriushchenko et al. 2020): random search that only reads the model's scores.

    It starts from vertical stripes of +-radius, then each query replaces one
    random window (a square of an image, a segment of a signal, a run of a
    table's movable columns) with +-radius per channel and keeps the change
    where the margin ``z_y - max z_other`` falls. The window's share of the
    features starts at ``p_init`` and halves on the paper's schedule. Only
    examples not yet fooled spend queries.

    Args:
        predict: logits of a batch of inputs (any model: int8, ONNX Runtime, a black box).
        queries: model calls per example after the first.

    Returns:
        ``(N, ...)`` adversarial inputs.
    """
    if constraint.space != "input":
        raise ValueError("Square Attack perturbs input values; a token model has none (attack its embeddings with a white-box attack)")
    radius = eps * constraint.scale
    gen = torch.Generator().manual_seed(seed)
    x, y = x.float().cpu(), y.cpu()
    grid = _Windows(x, constraint)
    delta = grid.stripes(len(x), radius, gen)
    adv = constraint.clip(x + delta, x)
    loss = margin(predict(adv), y)
    for i in range(queries):
        todo = (loss > 0).nonzero()[:, 0]
        if len(todo) == 0:
            break
        window = grid.window(todo, _square_share(p_init, i, queries), gen)  # (B, 1, *spatial) bool
        signs = (torch.randint(0, 2, (len(todo), *grid.channel_shape), generator=gen) * 2 - 1).float() * radius
        trial_delta = torch.where(window, signs, delta[todo])
        trial = constraint.clip(x[todo] + trial_delta, x[todo])
        trial_loss = margin(predict(trial), y[todo])
        better = trial_loss < loss[todo]
        keep = todo[better]
        delta[keep], adv[keep], loss[keep] = trial_delta[better], trial[better], trial_loss[better]
    return adv


def _square_share(p_init: float, i: int, queries: int) -> float:
    """The share of features a window changes at query ``i``: ``p_init`` halved at 10, 50, 200, 500, 1k, 2k, 4k, 6k and 8k of 10k,
    the schedule of Andriushchenko et al. (2020) rescaled to ``queries``."""
    at = int(i / queries * 10_000)
    halvings = sum(at > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2**halvings


class _Windows:
    """Random windows over an input's movable features: squares of an image, segments of a signal or of a table's numeric columns."""

    def __init__(self, x: torch.Tensor, constraint: Constraint) -> None:
        self.shape = tuple(x.shape[1:])
        if len(self.shape) == 3:  # (C, H, W): squares over H, W, one sign per channel
            self.spatial, self.channel_shape = self.shape[1:], (self.shape[0], 1, 1)
        elif len(self.shape) == 2:  # (C, L): segments over L
            self.spatial, self.channel_shape = self.shape[1:], (self.shape[0], 1)
        else:  # (D,): segments over the movable columns
            self.spatial, self.channel_shape = self.shape, (1,)
        mask = constraint.mask
        movable = torch.ones(self.spatial, dtype=torch.bool) if mask is None else mask.reshape(-1)[-math.prod(self.spatial):].bool()
        self.positions = movable.reshape(-1).nonzero()[:, 0]  # flat indices of the spatial features a window may cover
        self.device = x.device

    def stripes(self, n: int, radius: float, gen: torch.Generator) -> torch.Tensor:
        """``(n, ...)`` starting perturbations: +-radius per column (images: vertical stripes), nothing on fixed features."""
        drawn = (n, self.shape[0], 1, self.shape[2]) if len(self.shape) == 3 else (n, *self.shape)
        out = ((torch.randint(0, 2, drawn, generator=gen) * 2 - 1).float() * radius).expand(n, *self.shape).clone()
        if len(self.shape) != 3:
            flat = torch.zeros(math.prod(self.spatial), dtype=torch.bool)
            flat[self.positions] = True
            out = out * flat.reshape(self.spatial).float()
        return out.to(self.device)

    def window(self, rows: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
        """``(B, 1, *spatial)`` (``(B, D)`` for tables) booleans: one random window per row, covering ``share`` of the features."""
        b = len(rows)
        if len(self.spatial) == 2:
            h, w = self.spatial
            s = max(1, min(round(math.sqrt(share * h * w)), h - 1, w - 1))
            top = torch.randint(0, h - s + 1, (b,), generator=gen)
            left = torch.randint(0, w - s + 1, (b,), generator=gen)
            rr, cc = torch.arange(h), torch.arange(w)
            inside = ((rr[None] >= top[:, None]) & (rr[None] < top[:, None] + s))[:, :, None] & \
                     ((cc[None] >= left[:, None]) & (cc[None] < left[:, None] + s))[:, None, :]  # (B, H, W)
            return inside[:, None].to(self.device)
        m = len(self.positions)
        s = max(1, min(round(share * m), m - 1)) if m > 1 else 1
        first = torch.randint(0, m - s + 1, (b,), generator=gen)
        k = torch.arange(m)
        chosen = (k[None] >= first[:, None]) & (k[None] < first[:, None] + s)  # (B, M) over the movable positions
        flat = torch.zeros((b, math.prod(self.spatial)), dtype=torch.bool)
        flat[:, self.positions] = chosen
        flat = flat.reshape(b, *self.spatial)
        return (flat[:, None] if len(self.shape) == 2 else flat).to(self.device)
