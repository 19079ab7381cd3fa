"""Square Attack (Andriushchenko et al. 2020): the black-box attack, for models without usable gradients.

It only calls ``predict`` (logits of a batch), so it attacks int8 kernels,
ONNX Runtime graphs, tree ensembles and black boxes alike, within the same
``Constraint`` as the white-box attacks of ``attacks.py``. Both of the paper's
threat models: L-inf (each query sets one random window to +-radius per
channel) and L2 (each query moves the perturbation's mass from a second
window into a first one, redrawn as a centred +/- bump, on the sphere of the
radius).
"""

from __future__ import annotations

import math

import torch

from .attack_constraint import Constraint
from .attacks import Predict, margin

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # of 10k queries (Andriushchenko et al. 2020)


def square(predict: Predict, x: torch.Tensor, y: torch.Tensor, eps: float, constraint: Constraint, *, norm: str = "linf",
           queries: int = 300, p_init: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Square Attack (Andriushchenko et al. 2020): random search that only reads the model's scores.

    L-inf: it starts from vertical stripes of +-radius, then each query
    replaces one random window (a square of an image, a segment of a signal,
    a run of a table's movable columns) with +-radius per channel. L2: it
    starts from a grid of tiles, each a +/- bump of random sign per channel,
    scaled onto the sphere of the radius; each query picks two windows of the
    same size, takes the mass out of both (plus any of the budget left unused
    where the valid range clipped the perturbation) and puts it into the first
    as a new bump (a half of weight ``sum_{k >= d} 1/(k+1)^2`` at distance
    ``d`` from its centre, the other half negated), keeping the old direction
    there. Either way the change is kept where the margin
    ``z_y - max z_other`` falls; the window's share of the features starts at
    ``p_init`` and halves on the paper's schedule; only examples not yet
    fooled spend queries.

    Args:
        predict: logits of a batch of inputs (any model: int8, ONNX Runtime, a black box).
        norm: ``linf`` or ``l2``.
        queries: model calls per example after the first.

    Returns:
        ``(N, ...)`` adversarial inputs.
    """
    if constraint.space != "input":
        raise ValueError("Square Attack perturbs input values; a token model has none (attack its embeddings with a white-box attack)")
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm = {norm!r}; use 'linf' or 'l2'")
    radius = eps * constraint.scale
    gen = torch.Generator().manual_seed(seed)
    x, y = x.float().cpu(), y.cpu()
    grid = _Windows(x, constraint)
    bounds = constraint.bounds(x)
    if norm == "linf":
        delta = grid.stripes(len(x), radius, gen)
    else:
        delta = _onto_sphere(grid.tiles(len(x), gen), radius)
    adv = constraint.clip(x + delta, x, bounds)
    if norm == "l2":
        delta = adv - x  # what the range clipped is budget the next windows may spend
    loss = margin(predict(adv), y)
    for i in range(queries):
        todo = (loss > 0).nonzero()[:, 0]
        if len(todo) == 0:
            break
        share = _square_share(p_init, i, queries)
        x_todo = x[todo]
        if norm == "linf":
            window = grid.window(todo, share, gen)  # (B, 1, *spatial) bool
            signs = (torch.randint(0, 2, (len(todo), *grid.channel_shape), generator=gen) * 2 - 1).float() * radius
            trial_delta = torch.where(window, signs, delta[todo])
        else:
            trial_delta = _onto_sphere(_l2_proposal(grid, delta[todo], share, radius, gen), radius)
        trial = constraint.clip(x_todo + trial_delta, x_todo, _rows(bounds, todo))
        if norm == "l2":
            trial_delta = trial - x_todo
        trial_loss = margin(predict(trial), y[todo])
        better = trial_loss < loss[todo]
        keep = todo[better]
        delta[keep], adv[keep], loss[keep] = trial_delta[better], trial[better], trial_loss[better]
    return adv


def _square_share(p_init: float, i: int, queries: int) -> float:
    """The share of features a window changes at query ``i``: ``p_init`` halved at 10, 50, 200, 500, 1k, 2k, 4k, 6k and 8k of 10k,
    the schedule of Andriushchenko et al. (2020) rescaled to ``queries``."""
    at = int(i / queries * 10_000)
    return p_init / 2 ** sum(at > b for b in _HALVINGS)


def _rows(bounds: tuple, todo: torch.Tensor) -> tuple:
    """The per-example bounds of the rows ``todo`` (scalar or one-row bounds are shared by every row)."""
    return tuple(b[todo] if isinstance(b, torch.Tensor) and b.dim() > 0 and len(b) > 1 else b for b in bounds)


def _onto_sphere(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """``delta`` scaled to L2 norm ``radius`` per example (a zero row stays zero)."""
    length = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))
    return delta * (radius / length.clamp_min(1e-12))


def _l2_proposal(grid: _Windows, delta: torch.Tensor, share: float, radius: float, gen: torch.Generator) -> torch.Tensor:
    """One L2 query's candidate perturbations for the rows of ``delta`` (their current ones, clipped to the range)."""
    b = len(delta)
    flat = delta.reshape(b, grid.channels, -1)  # (B, C, P): every channel over the spatial positions
    side = grid.l2_side(share)
    first, bump = grid.placed(b, side, gen)  # (B, 1, P) bool, (B, 1, P) a unit bump inside the first window
    second, _ = grid.placed(b, side, gen)
    both = first | second
    spare = (radius**2 - flat.square().sum((1, 2))).clamp_min(0)  # budget the range clipped away
    mass = ((spare + (flat * both).square().sum((1, 2))) / grid.channels).sqrt()  # per channel, (B,)
    old = flat * first
    old = old / old.square().sum(2, keepdim=True).sqrt().clamp_min(1e-12)
    signs = (torch.randint(0, 2, (b, grid.channels, 1), generator=gen) * 2 - 1).float()
    new = bump * signs + old
    new = new / new.square().sum(2, keepdim=True).sqrt().clamp_min(1e-12) * mass.view(-1, 1, 1)
    out = torch.where(first, new, torch.where(both, 0.0, flat))
    return out.reshape(delta.shape)


def _nested(n: int, k: int) -> torch.Tensor:
    """Weights of the centred nested rectangles: ``sum_{j = d}^{k-1} 1/(j+1)^2`` for each distance ``d`` < ``n``."""
    w = 1.0 / torch.arange(1, k + 1, dtype=torch.float32) ** 2
    tail = w.flip(0).cumsum(0).flip(0)  # tail[d] = sum_{j >= d} w_j
    return tail[torch.arange(n).clamp(max=k - 1)]


def _bump(rows: int, cols: int) -> torch.Tensor:
    """``(rows, cols)`` a positive half over the top ``rows // 2`` rows and a negative one below, unit L2 norm.

    Each half weighs a position at Chebyshev distance ``d`` from its centre by
    ``sum_{j >= d} 1/(j+1)^2`` (Andriushchenko et al. 2020, L2 sampling), so
    the mass sits near the two centres. ``rows = 1`` is one row of a 1-D
    segment split the same way along ``cols``.
    """
    def half(h: int, w: int) -> torch.Tensor:
        if h == 0 or w == 0:
            return torch.zeros((h, w))
        r, c = (torch.arange(h) - h // 2).abs(), (torch.arange(w) - w // 2).abs()
        return _nested(max(h, w), max(h // 2, w // 2) + 1)[torch.maximum(r[:, None], c[None, :])]

    if rows == 1:
        out = torch.cat([half(1, cols // 2), -half(1, cols - cols // 2)], dim=1)
    else:
        out = torch.cat([half(rows // 2, cols), -half(rows - rows // 2, cols)], dim=0)
    return out / out.norm().clamp_min(1e-12)


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
        self.channels = self.shape[0] if len(self.shape) > 1 else 1
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

    # --- L2 -------------------------------------------------------------------
    # Windows and bumps as (B, 1, P) over the flattened spatial positions P, so one channel axis serves images, signals and tables.

    def l2_side(self, share: float) -> int:
        """The L2 window's side: ``sqrt(share x H x W)`` (images) or ``share x M`` (segments), odd, at least 3, inside the input."""
        if len(self.spatial) == 2:
            s, limit = round(math.sqrt(share * math.prod(self.spatial))), min(self.spatial)
        else:
            s, limit = round(share * len(self.positions)), len(self.positions)
        s = max(s, 3)
        s += 1 - s % 2
        return max(1, min(s, limit))

    def placed(self, b: int, side: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, P)`` one random window of ``side`` per row and a unit bump inside it (randomly transposed, for squares)."""
        p = math.prod(self.spatial)
        if len(self.spatial) == 2:
            h, w = self.spatial
            top = torch.randint(0, h - side + 1, (b,), generator=gen)
            left = torch.randint(0, w - side + 1, (b,), generator=gen)
            r = torch.arange(h)[None] - top[:, None]  # (B, H) position inside the window
            c = torch.arange(w)[None] - left[:, None]
            inside = ((r >= 0) & (r < side))[:, :, None] & ((c >= 0) & (c < side))[:, None, :]
            table = _bump(side, side)
            tables = torch.where(torch.rand(b, generator=gen).view(-1, 1, 1) < 0.5, table, table.T)  # (B, s, s)
            values = tables[torch.arange(b)[:, None, None], r.clamp(0, side - 1)[:, :, None], c.clamp(0, side - 1)[:, None, :]]
            return inside.reshape(b, 1, p).to(self.device), (values * inside).reshape(b, 1, p).to(self.device)
        m = len(self.positions)
        first = torch.randint(0, m - side + 1, (b,), generator=gen)
        k = torch.arange(m)[None] - first[:, None]  # (B, M)
        chosen = (k >= 0) & (k < side)
        values = _bump(1, side)[0][k.clamp(0, side - 1)] * chosen
        inside, bump = torch.zeros((b, p), dtype=torch.bool), torch.zeros((b, p))
        inside[:, self.positions], bump[:, self.positions] = chosen, values
        return inside[:, None].to(self.device), bump[:, None].to(self.device)

    def tiles(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``(n, ...)`` L2's start: the movable positions cut into about 5 x 5 tiles (5 segments), each a bump of random sign per channel."""
        p = math.prod(self.spatial)
        if len(self.spatial) == 2:
            h, w = self.spatial
            side = max(min(h, w) // 5, 1)
            rows, cols = h // side, w // side
            top, left = (h - rows * side) // 2, (w - cols * side) // 2
            r, c = (torch.arange(h) - top), (torch.arange(w) - left)
            inside = ((r >= 0) & (r < rows * side))[:, None] & ((c >= 0) & (c < cols * side))[None, :]
            tile = (r.clamp(0, rows * side - 1) // side)[:, None] * cols + (c.clamp(0, cols * side - 1) // side)[None, :]  # (H, W)
            value = _bump(side, side)[r.clamp(min=0) % side][:, c.clamp(min=0) % side] * inside  # (H, W)
            count, tile, value = rows * cols, tile.reshape(p), value.reshape(p)
            positions = torch.arange(p)
        else:
            m = len(self.positions)
            side = max(m // 5, 1)
            count = math.ceil(m / side)
            k = torch.arange(m)
            tile, positions = k // side, self.positions
            value = _bump(1, side)[0][k % side]
        signs = (torch.randint(0, 2, (n, self.channels, count), generator=gen) * 2 - 1).float()
        out = torch.zeros((n, self.channels, p))
        out[:, :, positions] = signs[:, :, tile] * value
        return out.reshape(n, *self.shape).to(self.device)
