"""The one gradient helper: gradients of a logit (or a loss) with respect to a model's inputs, chunked.

Attribution (``checks/explain.py``) and adversarial attacks both go through
it; no check computes gradients its own way. Every function here:

* runs on the device the model's weights are on, in eval mode (each module's
  mode is restored after), with gradients enabled even inside an
  ``inference_mode`` caller;
* takes rows ``chunk`` at a time, where a row is one (example, step) pair of
  a path method: memory is bounded by ``chunk`` whatever ``n_steps`` is, and
  the result does not depend on ``chunk`` (each row's gradient is computed
  alone in eval mode and accumulated into the result in the same order;
  one exception measured: PyTorch's CPU kernels for a one-row batch can
  break a max-pool tie the other way, moving a gradient between tied pixels);
* for a model that reads token ids (an integer input), takes the gradient at
  the output of its token embedding layer, ``(N, T, D)``: ids have no
  gradient. The embedding's output is replaced through a forward hook, so a
  padding mask the model computes from the ids is unchanged.

Integrated gradients (Sundararajan et al. 2017) use Captum's quadrature
rules (Gauss-Legendre by default, or a Riemann sum), so the numbers equal
``captum.attr.IntegratedGradients`` (and ``LayerIntegratedGradients`` on the
embedding layer) on the same inputs, baseline and steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ModelError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits (B, K), target (B,)) -> per-row losses (B,)
Points = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
CHUNK = 256  # rows (examples x steps) per backward pass


def embedding_layer(model: nn.Module) -> nn.Embedding | None:
    """The token embedding layer of a model that reads token ids, or ``None``.

    A transformers encoder names its own (``get_input_embeddings``); otherwise
    the model's first ``nn.Embedding`` (the zoo's ``gru`` and ``transformer``).
    """
    for module in model.modules():
        get = getattr(module, "get_input_embeddings", None)
        if callable(get) and isinstance(get(), nn.Embedding):
            return get()
    return next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)


def model_device(model: nn.Module) -> torch.device:
    weight = next(model.parameters(), None)
    return weight.device if weight is not None else torch.device("cpu")


def gradient_space(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` where gradients are taken: the input itself (float), or its token embeddings ``(N, T, D)`` (ids).

    Raises:
        ModelError: integer inputs to a model with no embedding layer.
    """
    x = x.to(model_device(model))
    if x.is_floating_point():
        return x
    layer = embedding_layer(model)
    if layer is None:
        raise ModelError(f"{type(model).__name__}: integer inputs but no embedding layer to take gradients at")
    with torch.no_grad():
        return layer(x).detach()


def path_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, points: Points, weights: torch.Tensor | np.ndarray, *,
                   loss: Loss | None = None, chunk: int = CHUNK) -> torch.Tensor:
    """``sum_s weights[s] * grad f(point(e, s)) * multiplier(e, s)`` for every example ``e``: the core of every path method.

    Args:
        x: ``(N, ...)`` inputs (float features, or token ids).
        target: ``(N,)`` classes whose logit is differentiated (or the loss's targets).
        points: ``(examples, steps)`` index vectors of one chunk -> the points
            in gradient space ``(B, ...)`` and a multiplier (same shape, or ``None`` for 1).
        weights: ``(S,)`` the weight of each step.
        loss: differentiate this per-row loss instead of the target logit.
        chunk: rows (example, step pairs) per backward pass.

    Returns:
        ``(N, ...)`` float32 on the model's device, shaped as the gradient space.
    """
    device = model_device(model)
    x, target = x.to(device), target.to(device)
    weights = torch.as_tensor(np.asarray(weights), dtype=torch.float32, device=device)
    n, s = len(x), len(weights)
    out: torch.Tensor | None = None
    for start in range(0, n * s, max(1, chunk)):
        pair = torch.arange(start, min(start + chunk, n * s), device=device)
        e, step = pair // s, pair % s
        at, multiplier = points(e, step)
        g, _ = _gradients(model, x[e], at, target[e], loss)
        g = g * weights[step].view(-1, *([1] * (g.dim() - 1)))
        if multiplier is not None:
            g = g * multiplier
        if out is None:
            out = torch.zeros((n, *g.shape[1:]), dtype=torch.float32, device=device)
        out.index_add_(0, e, g.float())
    return out if out is not None else torch.zeros((0,), device=device)


def input_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, loss: Loss | None = None, chunk: int = CHUNK) -> torch.Tensor:
    """Gradient of each example's target logit (or its ``loss``) with respect to its input or token embeddings."""
    space = gradient_space(model, x)
    return path_gradients(model, x, target, lambda e, s: (space[e], None), [1.0], loss=loss, chunk=chunk)


def gradients_at(model: nn.Module, x: torch.Tensor, at: torch.Tensor, target: torch.Tensor, *, loss: Loss | None = None,
                 chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, K)`` at the points ``at`` and the gradient there of each row's target logit (or its ``loss``).

    ``at`` lies in gradient space (shaped like ``gradient_space(model, x)``):
    a float model's inputs, or a token model's embedding outputs, with ``x``
    still supplying the ids (so a padding mask the model computes from them
    is unchanged). Iterative attacks step through this space; one call gives
    both what they track (the logits) and where they go next (the gradient).
    """
    device = model_device(model)
    x, at, target = x.to(device), at.to(device), target.to(device)
    grads, logits = [], []
    for start in range(0, len(x), max(1, chunk)):
        rows = slice(start, start + max(1, chunk))
        g, z = _gradients(model, x[rows], at[rows], target[rows], loss)
        grads.append(g.float())
        logits.append(z.detach().float())
    if not grads:
        return torch.zeros((0,), device=device), torch.zeros_like(at)
    if len(grads) == 1:  # one chunk: no copy
        return logits[0], grads[0]
    return torch.cat(logits), torch.cat(grads)


def quadrature(n_steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, step weights)`` of a rule on [0, 1]: Captum's ``gausslegendre`` or ``riemann_{left,right,middle,trapezoid}``.

    One difference, on purpose: ``riemann_trapezoid`` is the trapezoid rule
    (weights ``1/(n-1)``, halved at the ends, summing to 1); Captum 0.9 gives
    its ends ``1/(2n)`` and the rest ``1/n``, weights summing to ``1 - 1/n``,
    which leaves its attributions short of completeness by that share.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps = {n_steps}; use n_steps >= 1")
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (nodes + 1), 0.5 * w
    k = np.arange(n_steps)
    if method == "riemann_trapezoid":
        if n_steps < 2:
            raise ValueError("riemann_trapezoid needs n_steps >= 2")
        w = np.full(n_steps, 1.0 / (n_steps - 1))
        w[[0, -1]] /= 2
        return np.linspace(0, 1, n_steps), w
    offsets = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if method not in offsets:
        raise ValueError(f"unknown integration method '{method}'; use gausslegendre or one of {', '.join(offsets)}, riemann_trapezoid")
    return (k + offsets[method]) / n_steps, np.full(n_steps, 1.0 / n_steps)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor | None = None, *,
                         n_steps: int = 50, method: str = "gausslegendre", chunk: int = CHUNK) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017) in gradient space: ``(x - b) * integral of grad f(b + a (x - b)) da``.

    Args:
        baseline: ``(N, ...)`` or one row ``(...)``, in input units (token ids
            for a token model, whose baseline is then their embeddings);
            default zeros (pad ids).
        chunk: rows per backward pass; memory does not grow with ``n_steps``.

    Returns:
        ``(N, ...)`` attributions in gradient space (a token model's ``(N, T, D)``: sum the last axis per token).
    """
    space = gradient_space(model, x)
    base = _baseline(model, x, baseline, space)
    alphas, weights = quadrature(n_steps, method)
    alphas_t = torch.as_tensor(alphas, dtype=torch.float32, device=space.device)

    def points(e: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        delta = space[e] - base[e]
        return base[e] + alphas_t[s].view(-1, *([1] * (delta.dim() - 1))) * delta, delta

    return path_gradients(model, x, target, points, weights, chunk=chunk)


def smoothgrad(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, samples: int = 16, sigma: float = 0.15, seed: int = 0,
               chunk: int = CHUNK) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the mean gradient under Gaussian noise of ``sigma`` x each example's value range."""
    space = gradient_space(model, x)
    scale = sigma * (space.flatten(1).amax(1) - space.flatten(1).amin(1)).clamp(min=1e-12)  # (N,)
    noise = _noise(space.shape[1:], seed, space.device)

    def points(e: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, None]:
        return space[e] + noise(e, s) * scale[e].view(-1, *([1] * (space.dim() - 1))), None

    return path_gradients(model, x, target, points, np.full(samples, 1.0 / samples), chunk=chunk)


def gradient_shap(model: nn.Module, x: torch.Tensor, target: torch.Tensor, baselines: torch.Tensor, *, samples: int = 16,
                  sigma: float = 0.0, seed: int = 0, chunk: int = CHUNK) -> torch.Tensor:
    """GradientSHAP / expected gradients (Lundberg & Lee 2017; Erion et al. 2021).

    Each sample draws a baseline row from ``baselines`` (input units) and a
    point uniformly on the path from it to the (optionally noised) input;
    the attribution is the mean of ``grad * (x - baseline)``, as Captum's ``GradientShap``.
    """
    space = gradient_space(model, x)
    bank = gradient_space(model, baselines)
    g = torch.Generator().manual_seed(seed)
    n = len(space)
    pick = torch.randint(len(bank), (n, samples), generator=g).to(space.device)
    alpha = torch.rand((n, samples), generator=g).to(space.device)
    noise = _noise(space.shape[1:], seed + 1, space.device)

    def points(e: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1, *([1] * (space.dim() - 1)))
        noisy = space[e] + sigma * noise(e, s)
        b = bank[pick[e, s]]
        return b + alpha[e, s].view(shape) * (noisy - b), noisy - b

    return path_gradients(model, x, target, points, np.full(samples, 1.0 / samples), chunk=chunk)


def layer_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module, *,
                    chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """``(activations, gradients)`` of ``layer``'s output for each example's target logit (Grad-CAM's inputs)."""
    device = model_device(model)
    x, target = x.to(device), target.to(device)
    acts, grads = [], []
    for start in range(0, len(x), max(1, chunk)):
        kept: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _m, _i, out: kept.append(out))
        try:
            with _eval(model), torch.enable_grad():
                logits = model(x[start : start + chunk])
                objective = logits.gather(1, target[start : start + chunk, None]).sum()
                (g,) = torch.autograd.grad(objective, kept[-1])
        finally:
            handle.remove()
        acts.append(kept[-1].detach().float())
        grads.append(g.float())
    return torch.cat(acts), torch.cat(grads)


def logits_at(model: nn.Module, x: torch.Tensor, at: torch.Tensor, *, chunk: int = CHUNK) -> torch.Tensor:
    """Logits ``(N, K)`` with the gradient space set to ``at``: the input itself, or a token model's embedding output
    (the path's endpoints of integrated gradients, e.g. ``f(baseline)`` for its completeness)."""
    device = model_device(model)
    x, at = x.to(device), at.to(device)
    out = []
    for start in range(0, len(x), max(1, chunk)):
        xs, values = x[start : start + chunk], at[start : start + chunk]
        handle = None if x.is_floating_point() else embedding_layer(model).register_forward_hook(lambda _m, _i, _o: values)
        try:
            with _eval(model), torch.no_grad():
                out.append(model(values if handle is None else xs).float())
        finally:
            if handle is not None:
                handle.remove()
    return torch.cat(out)


def _gradients(model: nn.Module, x: torch.Tensor, at: torch.Tensor, target: torch.Tensor, loss: Loss | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed objective with respect to ``at`` (the input, or the embedding output replacing ``x``'s), and the logits."""
    at = at.detach().requires_grad_(True)
    handle = None
    if not x.is_floating_point():  # token ids: the embedding layer's output becomes ``at``
        handle = embedding_layer(model).register_forward_hook(lambda _m, _i, _out: at)
    try:
        with _eval(model), torch.enable_grad():
            logits = model(at if handle is None else x)
            objective = loss(logits, target).sum() if loss is not None else logits.gather(1, target[:, None]).sum()
            (g,) = torch.autograd.grad(objective, at)
    finally:
        if handle is not None:
            handle.remove()
    return g, logits


def _baseline(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor | None, space: torch.Tensor) -> torch.Tensor:
    if baseline is None:
        baseline = torch.zeros_like(x)
    baseline = torch.as_tensor(baseline).to(x.device)
    if baseline.dim() == x.dim() - 1:
        baseline = baseline.expand_as(x)
    return gradient_space(model, baseline.to(x.dtype)).expand_as(space)


def _noise(shape: tuple[int, ...], seed: int, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Standard normal noise for (example, sample) pairs, the same whatever the chunking: each pair's own seed."""
    generator = torch.Generator()  # re-seeded for every pair: a new generator's numbers, in a quarter of the time

    def draw(e: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        rows = [torch.randn(shape, generator=generator.manual_seed(seed * 1_000_003 + int(i) * 65_537 + int(j)))
                for i, j in zip(e.tolist(), s.tolist())]
        return torch.stack(rows).to(device)
    return draw


class _eval:
    """Eval mode for the duration of a block, each module's mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        # A model already in eval mode is left alone: an attack enters this at every step, and setting each module's
        # flag twice (``nn.Module.__setattr__``) cost about 2% of a PGD step on the digits CNN.
        self.modes = [(m, m.training) for m in self.model.modules()]
        if any(training for _, training in self.modes):
            self.model.eval()

    def __exit__(self, *_exc) -> None:
        for module, training in self.modes:
            if training:
                module.training = training
