"""Infidelity and max-sensitivity (Yeh et al. 2019) of one attribution method, through ``captum.metrics``.

Both are computed per example on the check's own sample, in the feature
space every method is read in (``explainers.Setup``), with a seeded
perturbation and every forward pass through the one batched forward pass:

* **infidelity**: ``E[(I . a - (f(x) - f(x - I)))^2]`` over perturbations
  ``I`` that remove a random share of the example's removable features
  (each set to its baseline; Yeh et al.'s removal perturbations, which work
  alike for pixels, steps, columns and tokens). ``f`` is the target's logit,
  and the attributions are rescaled by the least-squares factor first
  (Captum's ``normalize=True``), so a method is not penalised for its units
  (saliency's magnitudes); lower is better, in squared logits (comparable
  between methods of one model, not between models);
* **max-sensitivity**: ``max ||a(x') - a(x)|| / ||a(x)||`` over ``x'`` drawn
  uniformly within ``radius`` times the sample's value range around ``x``:
  how much the explanation moves under noise that leaves the input alike.
  The method is run again on every noisy copy, so it costs the method's
  time times the number of perturbations. Sampling methods (SmoothGrad,
  GradientSHAP, KernelSHAP) draw fresh samples on the copies, so their
  figure includes their own sampling noise. Token ids have no small
  perturbation: ``None`` for token models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from ..errors import require
from ..models.forward import forward_pass
from . import attribution_math as am
from .explainers import Setup

REMOVED_SHARE = 0.25  # infidelity's perturbations remove about a quarter of an example's features
Method = Callable[..., np.ndarray]  # explainers.REGISTRY's verb: (model, x, target, setup) -> (N, F)


def removal_perturbation(share: float, seed: int) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Captum ``perturb_func`` on presence vectors ``z`` ``(B, F)``: each present feature removed with probability ``share``.

    Returns ``(I, z - I)``: the removed features and what stays. One seeded
    generator per metric call, so a call is reproducible.
    """
    generator = torch.Generator().manual_seed(seed)

    def perturb(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        removed = z * (torch.rand(z.shape, generator=generator, dtype=torch.float64) < share).to(z.dtype)
        return removed, z - removed

    return perturb


def infidelity(model, x: np.ndarray, target: np.ndarray, setup: Setup, attributions: np.ndarray, *, samples: int = 8,
               share: float = REMOVED_SHARE, seed: int = 0, logits: torch.Tensor | None = None) -> np.ndarray:
    """``(N,)`` infidelity of ``attributions`` ``(N, F)`` (see the module's docstring), ``samples`` perturbations per example.

    ``logits``: the model's ``(N, K)`` at ``x``, when the caller has them.
    Captum asks for ``f(x)`` again with every batch of perturbations; it is
    computed once (or taken from ``logits``) and handed back each time.
    """
    metrics = require("captum.metrics", "explain")
    x = np.asarray(x)
    owner = am.owner_of(setup.groups, int(np.prod(setup.shape)))
    present = torch.as_tensor(setup.eligible(x), dtype=torch.float64)  # (N, F): what can be removed (padding cannot)
    at_x = {} if logits is None else {"logits": logits}

    def forward(z: torch.Tensor, xs: torch.Tensor, bs: torch.Tensor) -> torch.Tensor:
        if z is present:  # the unperturbed input (Captum hands back the very tensor it was given): f(x)
            if "logits" not in at_x:
                at_x["logits"] = forward_pass(model, xs, batch_size=setup.batch_size).logits
            return at_x["logits"]
        keep = (z[:, np.maximum(owner, 0)] > 0.5) | torch.as_tensor(owner < 0)  # (B, D); a dimension of no feature stays
        return forward_pass(model, torch.where(keep.view(xs.shape), xs, bs), batch_size=setup.batch_size).logits

    value = metrics.infidelity(
        forward, removal_perturbation(share, seed), present, torch.as_tensor(np.asarray(attributions, dtype=np.float64)),
        additional_forward_args=(torch.as_tensor(x), torch.as_tensor(setup.baseline)), target=torch.as_tensor(target),
        n_perturb_samples=samples, max_examples_per_batch=_per_batch(len(x), samples, setup.batch_size), normalize=True)
    return value.double().numpy()


def uniform_noise(radius: float, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Captum ``perturb_func``: uniform noise in the L-infinity ball of ``radius``, from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(inputs.shape, generator=generator, dtype=inputs.dtype) * 2 - 1
        return inputs + radius * noise

    return perturb


def max_sensitivity(method: Method, model, x: np.ndarray, target: np.ndarray, setup: Setup, *, samples: int = 4,
                    radius: float = 0.02, seed: int = 0) -> np.ndarray | None:
    """``(N,)`` max-sensitivity of ``method`` (see the module's docstring); ``None`` for token inputs."""
    if setup.tokens:
        return None
    metrics = require("captum.metrics", "explain")
    x = np.asarray(x, dtype=np.float32)
    scale = radius * float(x.max() - x.min()) if x.size else radius

    def explain(inputs, target: torch.Tensor, baselines: torch.Tensor) -> tuple[torch.Tensor]:
        # Captum hands inputs (and, expanded, the baselines) as tuples of one tensor, and reads a tuple back
        xs, bs = (v[0] if isinstance(v, tuple) else v for v in (inputs, baselines))
        # For a one-example sample Captum leaves the baseline and the target one row each (broadcasting): give every copy its own
        bs = bs if len(bs) == len(xs) else bs.expand(len(xs), *bs.shape[1:])
        target = torch.as_tensor(target).reshape(-1)
        target = target if len(target) == len(xs) else target.expand(len(xs))
        return (torch.as_tensor(method(model, xs, target, replace(setup, baseline=np.asarray(bs)))),)

    value = metrics.sensitivity_max(
        explain, torch.as_tensor(x), perturb_func=uniform_noise(scale, seed), n_perturb_samples=samples,
        max_examples_per_batch=_per_batch(len(x), samples, setup.batch_size), target=torch.as_tensor(target), baselines=torch.as_tensor(setup.baseline))
    return value.double().numpy()


def _per_batch(n: int, samples: int, batch_size: int) -> int:
    """Captum's ``max_examples_per_batch``: about ``batch_size`` perturbed rows, every example in each (what Captum requires)."""
    return min(max(batch_size, n), n * samples)
