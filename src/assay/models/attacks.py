"""Adversarial attacks in pure torch: FGSM, PGD (L-inf, L2), APGD-CE and Square Attack (``square_attack.py``).

The white-box attacks take every gradient from the one gradient helper
(``models/gradients.py: gradients_at``), so they run chunked, in eval mode,
and, for a model reading token ids, in the space of its token embeddings. The
black-box Square Attack only calls the model forward (``models/forward.py``).

What an attacker may touch is a ``Constraint`` (``attack_constraint.py``),
built from the task by ``constraint_for``: images stay on [0, 1]; signals and table columns stay in
the range the training split spans; only numeric table columns move (one-hot
columns are masked out); a token model is attacked in embedding space. The
radius is ``eps * constraint.scale``: pixel units for images, the training
split's standard deviation for signals, standardised units for tables, the
embedding table's standard deviation for tokens. PGD and APGD take one
epsilon or one per example (an ``(N,)`` tensor: the check's bisection of
minimal epsilons), and with ``stop_when_fooled`` drop each example from the
batch at its first fooling iterate, which is then its returned point.

    >>> c = constraint_for(task, model)
    >>> adv = run_attack(model, x, y, 0.1, c, AttackSettings(attack="apgd", steps=20))
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import SpecError
from . import gradients as grad
from .attack_constraint import Constraint, constraint_for, per_row  # noqa: F401  (the attacks' public names)

ATTACKS = ("fgsm", "pgd", "apgd", "square")
WHITE_BOX = ("fgsm", "pgd", "apgd")
NORMS = ("linf", "l2")
SCHEDULES = ("constant", "cosine")
CHUNK = 1024  # rows per backward pass: one attack step over a sample is one or a few passes
Predict = Callable[[torch.Tensor], torch.Tensor]  # inputs (B, ...) -> logits (B, K), no gradients needed


@dataclass(frozen=True)
class AttackSettings:
    """How an attack runs; everything here is part of the prediction cache's key.

    Attributes:
        attack: ``fgsm``, ``pgd``, ``apgd`` (Croce & Hein 2020) or ``square`` (Andriushchenko et al. 2020).
        norm: ``linf`` or ``l2`` (Square Attack: ``linf`` only).
        steps: iterations of PGD/APGD (FGSM takes one).
        restarts: independent runs; each later one attacks only the examples still standing.
        step_size: PGD's step as a fraction of the radius (default ``2.5 / steps``, Madry et al. 2018).
        random_start: PGD starts at a uniform point of the ball (APGD always does).
        schedule: PGD's step size over the iterations: ``constant`` or ``cosine`` (decays to 0).
        queries: Square Attack's budget of model calls per example.
        p_init: Square Attack's initial share of the features one square changes.
        seed: seeds the random starts and the squares.
        stop_when_fooled: PGD and APGD stop stepping an example at its first fooling iterate and return that point
            (AutoAttack attacks only the points still standing): robust accuracy, which counts an example broken once
            any iterate fools it, can only fall per seed, and the steps cost only the examples still standing.
            Off, PGD returns its last iterate (Madry et al.; torchattacks). APGD returns the first fooling iterate either way.
    """

    attack: str = "apgd"
    norm: str = "linf"
    steps: int = 20
    restarts: int = 1
    step_size: float | None = None
    random_start: bool = True
    schedule: str = "constant"
    queries: int = 300
    p_init: float = 0.3
    seed: int = 0
    stop_when_fooled: bool = True

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"attack = {self.attack!r}; use one of {', '.join(ATTACKS)}")
        if self.norm not in NORMS:
            raise ValueError(f"norm = {self.norm!r}; use one of {', '.join(NORMS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule = {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if min(self.steps, self.restarts, self.queries) < 1:
            raise ValueError("steps, restarts and queries must be at least 1")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size = {self.step_size}; use a positive fraction of epsilon, or leave it unset")
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init = {self.p_init}; use a share of the features in (0, 1]")

    def digest(self) -> str:
        """A short hash of the settings that change this attack's output (FGSM's one step reads none of the iterative ones)."""
        kept = asdict(self)
        iterative = ("steps", "restarts", "step_size", "random_start", "schedule", "stop_when_fooled")
        unused = {"fgsm": ("queries", "p_init", *iterative), "square": iterative}.get(self.attack, ("queries", "p_init"))
        for key in unused:
            kept.pop(key)
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line for the evidence, e.g. ``apgd (linf, 20 steps, 1 restart)``."""
        if self.attack == "square":
            return f"square ({self.norm}, {self.queries} queries, black-box)"
        if self.attack == "fgsm":
            return f"fgsm ({self.norm}, one step)"
        stops = ", fooled examples stop" if self.stop_when_fooled and self.attack == "pgd" else ""  # (APGD's output is the same)
        return f"{self.attack} ({self.norm}, {self.steps} steps, {self.restarts} restart{'s' if self.restarts > 1 else ''}{stops})"


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy ``(B,)``: the loss every gradient attack here ascends."""
    return F.cross_entropy(logits, target, reduction="none")


def _summed_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The rows' cross-entropies summed in one fused kernel: the same gradient per row as ``cross_entropy``, a little faster."""
    return F.cross_entropy(logits, target, reduction="sum")


def margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per row: below 0 when the prediction is wrong (Square Attack's loss)."""
    true = logits.gather(1, target[:, None])[:, 0]
    other = logits.scatter(1, target[:, None], float("-inf")).amax(1)
    return true - other


# --- white-box ---------------------------------------------------------------

def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, constraint: Constraint, *, norm: str = "linf",
         chunk: int = CHUNK) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of the whole radius along the loss gradient."""
    return pgd(model, x, y, eps, constraint, norm=norm, steps=1, step_size=1.0, random_start=False, chunk=chunk)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, constraint: Constraint, *, norm: str = "linf",
        steps: int = 20, step_size: float | None = None, random_start: bool = True, restarts: int = 1, schedule: str = "constant",
        seed: int = 0, chunk: int = CHUNK, loss: grad.Loss | None = None, stop_when_fooled: bool = False) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy (Madry et al. 2018).

    Each step moves by ``step_size * radius`` along the gradient's sign (L-inf)
    or its direction (L2), then projects back onto the ball and the valid
    range. Restarts after the first attack only the examples not yet fooled.

    Args:
        x: ``(N, ...)`` inputs (token ids for a token model).
        y: ``(N,)`` true classes, or ``(N, K)`` probabilities when ``loss`` reads them.
        eps: the radius, in units of ``constraint.scale``: one for all, or ``(N,)``, each example its own.
        loss: the per-row loss ascended, ``loss(logits, y)``; default cross-entropy
            (TRADES' training ascends a KL divergence from the clean probabilities).
        stop_when_fooled: stop stepping an example once an iterate fools the model (its logits are
            at hand with each gradient) and return that first fooling iterate; needs classes ``y``.

    Returns:
        ``(N, ...)`` adversarial points in gradient space: the fooling one where
        a restart fooled the model (the first fooling iterate with
        ``stop_when_fooled``), else the first restart's last iterate.

    Raises:
        SpecError: ``stop_when_fooled`` with probabilities for ``y``; ``eps`` of another length than ``x``.
    """
    if stop_when_fooled and y.dim() != 1:
        raise SpecError("stop_when_fooled needs the true classes y (N,), not probabilities; set stop_when_fooled = False")
    start = grad.gradient_space(model, x)
    radius = _radius(eps, constraint, len(x), start.device)
    fraction = 2.5 / steps if step_size is None else step_size
    out, fooled = start.clone(), torch.zeros(len(x), dtype=torch.bool, device=start.device)
    gen = torch.Generator().manual_seed(seed)
    for restart in range(restarts):
        todo = (~fooled).nonzero()[:, 0]
        if len(todo) == 0:
            break
        x0, ids, target = start[todo], x.to(start.device)[todo], y.to(start.device)[todo]
        (r,) = _kept(todo, radius)
        adv, hit = _pgd_run(model, x0, ids, target, r, fraction, constraint, norm, steps, schedule, random_start, gen, chunk, loss,
                            stop_when_fooled)
        if restarts == 1:  # the first run attacks every example and nothing is left to choose: one forward pass saved
            return adv
        rest = ~hit  # the last iterates not yet judged
        labels = target if target.dim() == 1 else target.argmax(1)
        if bool(rest.any()):
            hit[rest] = grad.logits_at(model, ids[rest], adv[rest], chunk=chunk).argmax(1) != labels[rest]
        keep = hit if restart else torch.ones_like(hit)
        out[todo[keep]] = adv[keep]
        fooled[todo] |= hit
    return out


def _pgd_run(model, x0, ids, target, radius, fraction, constraint: Constraint, norm, steps, schedule, random_start, gen, chunk, loss,
             stop) -> tuple[torch.Tensor, torch.Tensor]:
    """One PGD run: ``(points, stopped)``, ``stopped`` marking the examples that stopped at a fooling iterate (none unless ``stop``)."""
    n = len(x0)
    low, high = constraint.bounds(x0)
    adv = x0.clone()
    if random_start:
        adv = constraint.project(x0 + constraint.masked(_uniform_ball(x0, radius, norm, gen)), x0, radius, norm, (low, high))
    out, stopped = adv, torch.zeros(n, dtype=torch.bool, device=x0.device)
    rows = torch.arange(n, device=x0.device)  # each stepped example's row of the output
    for t in range(steps):
        logits, g = grad.gradients_at(model, ids, adv, target, loss=loss or _summed_cross_entropy, chunk=chunk)
        if stop:
            wrong = logits.argmax(1) != target
            if bool(wrong.any()):  # these stop here; the rest step on, in a smaller batch
                stopped[rows[wrong]] = True
                out = out.clone() if out is adv else out
                out[rows[wrong]] = adv[wrong]
                rows, adv, g, x0, ids, target, radius, low, high = _kept(~wrong, rows, adv, g, x0, ids, target, radius, low, high)
                if len(rows) == 0:
                    return out, stopped
        step = fraction if schedule == "constant" else fraction * 0.5 * (1 + math.cos(math.pi * t / steps))
        adv = constraint.project(adv + per_row(step * radius, g) * _direction(constraint.masked(g), norm), x0, radius, norm, (low, high))
    if not stop:
        return adv, stopped
    out = out.clone() if out is adv else out
    out[rows] = adv
    return out, stopped


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, constraint: Constraint, *, norm: str = "linf",
         steps: int = 20, restarts: int = 1, rho: float = 0.75, seed: int = 0, chunk: int = CHUNK,
         stop_when_fooled: bool = False) -> torch.Tensor:
    """Auto-PGD on the cross-entropy (Croce & Hein 2020, Algorithm 1): no step size to tune.

    The step starts at twice the radius, with momentum 0.75; at checkpoints
    (the first after 22% of the iterations, then closer, never under 6%) an
    example's step is halved, and it goes back to its best point, when the
    loss rose in fewer than ``rho`` of the steps since the last checkpoint
    (condition 1), or when neither the step nor the best loss changed since
    then (condition 2). Restarts attack only the examples still standing.

    Args:
        eps: the radius, one for all or ``(N,)``, each example its own.
        stop_when_fooled: drop each example from the batch at its first fooling
            iterate. The returned points are the same either way (every
            example's state is its own); only the work shrinks.

    Returns:
        ``(N, ...)`` points in gradient space: the first fooling point where one
        was found, else the highest-loss point; an example misclassified to
        begin with is not attacked and comes back unchanged.
    """
    start = grad.gradient_space(model, x)
    radius = _radius(eps, constraint, len(x), start.device)
    out = start.clone()
    # As AutoAttack does, an example already misclassified is not attacked: it is returned as it is (robust at no radius).
    fooled = grad.logits_at(model, x, start, chunk=chunk).argmax(1) != y.to(start.device)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(restarts):
        todo = (~fooled).nonzero()[:, 0]
        if len(todo) == 0:
            break
        (r,) = _kept(todo, radius)
        best, hit = _apgd_run(model, start[todo], x.to(start.device)[todo], y.to(start.device)[todo], r, constraint, norm, steps,
                              rho, gen, chunk, stop_when_fooled)
        out[todo] = best
        fooled[todo] |= hit
    return out


def _apgd_run(model, x0, ids, target, radius, constraint: Constraint, norm, steps, rho, gen, chunk,
              stop) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(x0)
    shape = (-1, *([1] * (x0.dim() - 1)))
    checkpoints = _apgd_checkpoints(steps)
    low, high = constraint.bounds(x0)
    adv = constraint.project(x0 + constraint.masked(_uniform_ball(x0, radius, norm, gen)), x0, radius, norm, (low, high))
    logits, g = grad.gradients_at(model, ids, adv, target, loss=_summed_cross_entropy, chunk=chunk)
    loss = cross_entropy(logits.detach(), target)
    best_loss, best_x, best_g = loss, adv, g  # replaced, never written into, below
    fooled = logits.argmax(1) != target
    fooling = adv  # the fooling point of each fooled example
    step = torch.full((n,), 2.0, device=x0.device) * radius
    previous = adv
    rises = torch.zeros(n, device=x0.device)  # steps since the last checkpoint where the loss rose
    last_loss, last_best, last_reduced = loss, best_loss, torch.ones(n, dtype=torch.bool, device=x0.device)
    out, hit, rows = x0.clone(), torch.zeros(n, dtype=torch.bool, device=x0.device), torch.arange(n, device=x0.device)
    since = 0
    for t in range(steps + 1):
        if stop and bool(fooled.any()):  # the fooled examples leave with their fooling point; the rest step on in a smaller batch
            out[rows[fooled]], hit[rows[fooled]] = fooling[fooled], True
            (rows, x0, ids, target, radius, low, high, adv, g, loss, best_loss, best_x, best_g, step, previous, rises, last_loss,
             last_best, last_reduced) = _kept(~fooled, rows, x0, ids, target, radius, low, high, adv, g, loss, best_loss, best_x, best_g,
                                              step, previous, rises, last_loss, last_best, last_reduced)
            fooled, fooling = fooled[~fooled], adv
            if len(rows) == 0:
                return out, hit
        if t == steps:
            break
        momentum = 0.75 if t > 0 else 1.0
        z = constraint.project(adv + step.view(shape) * _direction(constraint.masked(g), norm), x0, radius, norm, (low, high))
        z = constraint.project(adv + momentum * (z - adv) + (1 - momentum) * (adv - previous), x0, radius, norm, (low, high))
        previous, adv = adv, z
        logits, g = grad.gradients_at(model, ids, adv, target, loss=_summed_cross_entropy, chunk=chunk)
        loss = cross_entropy(logits.detach(), target)
        wrong = logits.argmax(1) != target
        fooling = torch.where((wrong & ~fooled).view(shape), adv, fooling) if not stop else adv  # (stopping: none was fooled before)
        fooled = fooled | wrong
        rises += (loss > last_loss).float()
        last_loss = loss
        better = loss > best_loss
        wider = better.view(shape)
        best_x, best_g, best_loss = torch.where(wider, adv, best_x), torch.where(wider, g, best_g), torch.where(better, loss, best_loss)
        since += 1
        if checkpoints and t + 1 == checkpoints[0]:
            length = since
            checkpoints.pop(0)
            oscillating = rises <= rho * length  # condition 1: the loss rose in too few steps
            stuck = ~last_reduced & (last_best >= best_loss)  # condition 2: no halving and no better loss since the last checkpoint
            reduce = oscillating | stuck
            step = torch.where(reduce, step / 2.0, step)
            adv, g = torch.where(reduce.view(shape), best_x, adv), torch.where(reduce.view(shape), best_g, g)
            last_reduced, last_best, rises, since = reduce, best_loss, torch.zeros_like(rises), 0
    out[rows] = torch.where(fooled.view(shape), fooling, best_x)
    hit[rows] = fooled
    return out, hit


def _apgd_checkpoints(steps: int) -> list[int]:
    """The iterations after which APGD checks its step size: w_0 = 0, w_1 = 0.22 N, then gaps shrinking by 0.03 N to at least 0.06 N."""
    gap, shrink, floor = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at = [], 0
    while at + gap <= steps:
        at += gap
        out.append(at)
        gap = max(gap - shrink, floor)
    return out


def _direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent step of unit size: the gradient's sign (L-inf) or its unit vector (L2)."""
    if norm == "linf":
        return g.sign()
    return g / (g.flatten(1).norm(dim=1).view(-1, *([1] * (g.dim() - 1))) + 1e-12)


def _uniform_ball(x: torch.Tensor, radius: float | torch.Tensor, norm: str, gen: torch.Generator) -> torch.Tensor:
    """A random point of the ball: uniform per coordinate (L-inf), a random direction at a uniform-volume radius (L2)."""
    if norm == "linf":
        return (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device, x.dtype) * per_row(radius, x)
    d = torch.randn(x.shape, generator=gen)
    d = d / (d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1))) + 1e-12)
    r = torch.rand(len(x), generator=gen).to(x.device) ** (1.0 / max(1, x[0].numel()))
    return d.to(x.device, x.dtype) * per_row(radius * r, x)


def _radius(eps: float | torch.Tensor, constraint: Constraint, n: int, device: torch.device) -> float | torch.Tensor:
    """``eps * constraint.scale``: a number for one epsilon, ``(N,)`` float32 on ``device`` for one per example.

    Raises:
        SpecError: per-example epsilons of another length than the examples', negative or not finite.
    """
    if not isinstance(eps, (torch.Tensor, np.ndarray)) or np.ndim(eps) == 0:
        return float(eps) * constraint.scale
    r = torch.as_tensor(eps, dtype=torch.float32).to(device)
    if r.shape != (n,):
        raise SpecError(f"eps has shape {tuple(r.shape)}; give one epsilon, or one per example: shape ({n},)")
    if not bool(torch.isfinite(r).all()) or bool((r < 0).any()):
        raise SpecError("eps holds a negative or non-finite radius; give finite epsilons >= 0")
    return r * constraint.scale


def _kept(keep: torch.Tensor, *values):
    """Each per-example tensor of ``values`` at the rows ``keep`` (a mask or indices); a number or ``None`` as it is."""
    return tuple(v[keep] if isinstance(v, torch.Tensor) else v for v in values)


# --- one entry point -------------------------------------------------------------

def run_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, constraint: Constraint, settings: AttackSettings, *,
               predict: Predict | None = None, chunk: int = CHUNK) -> torch.Tensor:
    """The adversarial points of ``settings.attack`` at radius ``eps`` (in gradient space for the white-box attacks).

    Args:
        eps: one radius, or ``(N,)``, one per example (the white-box attacks).
        predict: Square Attack's black-box logits function (default: the model's forward pass, no gradients).
    """
    s = settings
    if s.attack == "square":
        if predict is None:
            from .forward import forward_pass

            def predict(batch: torch.Tensor) -> torch.Tensor:
                return forward_pass(model, batch, batch_size=chunk).logits

        from .square_attack import square  # (it imports this module: Constraint, margin)

        return square(predict, x, y, eps, constraint, norm=s.norm, queries=s.queries, p_init=s.p_init, seed=s.seed)
    if s.attack == "fgsm":
        return fgsm(model, x, y, eps, constraint, norm=s.norm, chunk=chunk)
    if s.attack == "pgd":
        return pgd(model, x, y, eps, constraint, norm=s.norm, steps=s.steps, step_size=s.step_size, random_start=s.random_start,
                   restarts=s.restarts, schedule=s.schedule, seed=s.seed, chunk=chunk, stop_when_fooled=s.stop_when_fooled)
    return apgd(model, x, y, eps, constraint, norm=s.norm, steps=s.steps, restarts=s.restarts, seed=s.seed, chunk=chunk,
                stop_when_fooled=s.stop_when_fooled)
