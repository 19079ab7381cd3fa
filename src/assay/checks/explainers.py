"""Attribution methods behind one verb, and the feature space they are read in.

Every method is ``method(model, x, target, setup) -> (N, F)`` float64: one
attribution per *feature* a person reads (a pixel over its channels, a
signal step, a token, a table's original column), whatever the model's input
encoding. Gradient methods go through the one gradient helper
(``models/gradients.py``); gradient-free ones (feature ablation / occlusion)
and the perturbation curves run their forward passes through the one batched
forward pass (``models/forward.py``), never an example at a time.

Methods: ``saliency`` (Simonyan et al. 2014), ``integrated_gradients``
(Sundararajan et al. 2017; layer IG at the token embeddings for token
models), ``smoothgrad`` (Smilkov et al. 2017), ``gradient_shap`` (Lundberg &
Lee 2017), ``ablation`` (Zeiler & Fergus 2014: occlusion of one feature at a
time, the baseline in its place), ``grad_cam`` (Selvaraju et al. 2017; the
last conv stage of a CNN), ``kernel_shap`` (Lundberg & Lee 2017, Captum's
``KernelShap`` one example at a time over coarse features: image patches,
signal windows, table columns, tokens) and ``attention_rollout`` (Abnar &
Zuidema 2020; models whose forward pass returns attention).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import require
from ..models import gradients as grad
from ..models.forward import forward_pass, has_attention
from ..models.inputs import as_input
from . import attribution_math as am

GRADIENT_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradient_shap", "grad_cam", "attention_rollout")
GRADIENT_FREE = ("ablation", "kernel_shap")
METHODS = (*GRADIENT_METHODS[:4], "ablation", "kernel_shap", "grad_cam", "attention_rollout")
COSTLY = ("kernel_shap",)  # ~20x a gradient method: by default only for candidates without gradients (Explain's costly_methods)
CAPTUM_METHODS = ("kernel_shap",)  # the others are the gradient helper's own (equal to Captum's, tested)


@dataclass
class Setup:
    """What every method reads: the task's feature space, the baseline, and the method's parameters.

    Attributes:
        names: the ``F`` feature names.
        groups: per feature, its flat input dimensions.
        shape: one input's shape.
        tokens: inputs are token ids (features are positions).
        baseline: ``(N, ...)`` the "absent" input for each example (pad ids, a blurred image, the mean row).
        references: rows GradientSHAP draws its baselines from.
        shap_samples: coalitions KernelSHAP evaluates per example.
        shap_features: about how many patches (images) or windows (signals) KernelSHAP reads an input in.
    """

    names: list[str]
    groups: list[np.ndarray]
    shape: tuple[int, ...]
    tokens: bool
    baseline: np.ndarray
    references: np.ndarray
    n_steps: int = 32
    samples: int = 8
    seed: int = 0
    chunk: int = 256
    batch_size: int = 512
    shap_samples: int = 64
    shap_features: int = 16

    def features(self, attributions: np.ndarray | torch.Tensor) -> np.ndarray:
        """``(N, F)`` from attributions in input (or, for tokens, ``(N, T)`` per-token) units."""
        a = attributions.detach().cpu().numpy() if isinstance(attributions, torch.Tensor) else np.asarray(attributions)
        return am.group_sum(a, self.groups)

    def eligible(self, x: np.ndarray) -> np.ndarray:
        """``(N, F)``: features that differ from the baseline somewhere (padding is not a token to remove)."""
        differs = (np.asarray(x).reshape(len(x), -1) != self.baseline.reshape(len(x), -1))
        return np.stack([differs[:, g].any(1) for g in self.groups], axis=1)

    def remove(self, x: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """``(N * S, ...)``: each example with its masked features set to the baseline, for masks ``(N, S, F)``."""
        n, s, _ = masks.shape
        owner = am.owner_of(self.groups, int(np.prod(self.shape)))
        dims = masks[:, :, owner]  # (N, S, D)
        flat_x = np.asarray(x).reshape(n, 1, -1)
        flat_b = self.baseline.reshape(n, 1, -1)
        return np.where(dims, flat_b, flat_x).reshape(n * s, *self.shape)


def feature_space(task, x: np.ndarray, baseline: str = "auto") -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Feature names, their input dimensions, and each example's baseline, for ``task``'s modality.

    Baselines ("auto"): pad ids for text, a blurred copy for images
    (Fong & Vedaldi 2017), zeros for signals, the training mean row for tables
    (zero in the pipeline's standardised units, the categories' frequencies
    in one-hot columns). ``"zeros"`` forces zeros (pad ids for text).
    """
    shape = tuple(x.shape[1:])
    width = int(np.prod(shape))
    if task.modality == "text":
        names = [f"position {t}" for t in range(shape[0])]
        groups = [np.array([t]) for t in range(shape[0])]
        return names, groups, np.zeros_like(x)
    if task.modality == "tabular":
        names, groups = _table_columns(task.pipeline, width)
        base = np.broadcast_to(task.train.x.mean(0, dtype=np.float64).astype(np.float32), x.shape) if baseline == "auto" else np.zeros_like(x)
        return names, groups, np.array(base)  # a copy: a one-row broadcast view counts as contiguous and stays read-only
    spatial = shape[1:]  # (H, W) or (L,)
    positions = int(np.prod(spatial))
    groups = [np.arange(shape[0]) * positions + p for p in range(positions)]  # one position over its channels
    names = [f"({p // spatial[1]}, {p % spatial[1]})" if len(spatial) == 2 else f"step {p}" for p in range(positions)]
    base = blur(x) if baseline == "auto" and task.modality == "image" else np.zeros_like(x)
    return names, groups, base


def _table_columns(pipeline, width: int) -> tuple[list[str], list[np.ndarray]]:
    """The user's original columns and the encoded columns each became (a one-hot block sums back to its column)."""
    if pipeline is None or not hasattr(pipeline, "categorical"):
        return [f"feature {j}" for j in range(width)], [np.array([j]) for j in range(width)]
    names, groups, start = list(pipeline.numeric), [np.array([j]) for j in range(len(pipeline.numeric))], len(pipeline.numeric)
    for column, categories in pipeline.categorical.items():
        names.append(column)
        groups.append(np.arange(start, start + len(categories) + 1))
        start += len(categories) + 1
    by_name = dict(zip(names, groups))
    order = [c for c in pipeline.columns if c in by_name]
    return order, [by_name[c] for c in order]


def blur(x: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Each image blurred by a Gaussian of ``sigma`` (default a quarter of its smaller side), reflect-padded."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    n, c, h, w = t.shape
    sigma = sigma or max(min(h, w) / 4, 0.5)
    radius = min(int(np.ceil(2 * sigma)), min(h, w) - 1)
    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
    k = k / k.sum()
    t = t.reshape(n * c, 1, h, w)
    t = nn.functional.conv2d(nn.functional.pad(t, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    t = nn.functional.conv2d(nn.functional.pad(t, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return t.reshape(n, c, h, w).numpy()


def _tokens_or_inputs(g: torch.Tensor, setup: Setup, magnitude: bool) -> torch.Tensor:
    """A token model's ``(N, T, D)`` to ``(N, T)`` (an L2 norm of gradients, or the sum of attributions); else as it is."""
    if setup.tokens:
        return g.norm(dim=-1) if magnitude else g.sum(dim=-1)
    return g.abs() if magnitude else g


def saliency(model, x, target, setup: Setup) -> np.ndarray:
    return setup.features(_tokens_or_inputs(grad.input_gradients(model, x, target, chunk=setup.chunk), setup, True))


def integrated_gradients(model, x, target, setup: Setup) -> np.ndarray:
    ig = grad.integrated_gradients(model, x, target, torch.as_tensor(setup.baseline), n_steps=setup.n_steps, chunk=setup.chunk)
    return setup.features(_tokens_or_inputs(ig, setup, False))


def smoothgrad(model, x, target, setup: Setup) -> np.ndarray:
    sg = grad.smoothgrad(model, x, target, samples=setup.samples, seed=setup.seed, chunk=setup.chunk)
    return setup.features(_tokens_or_inputs(sg, setup, True))


def gradient_shap(model, x, target, setup: Setup) -> np.ndarray:
    shap = grad.gradient_shap(model, x, target, torch.as_tensor(setup.references), samples=setup.samples, seed=setup.seed, chunk=setup.chunk)
    return setup.features(_tokens_or_inputs(shap, setup, False))


def ablation(model, x, target, setup: Setup) -> np.ndarray:
    """Occlusion / feature ablation: the drop in the target's probability when one feature takes its baseline value."""
    n, f = len(x), len(setup.groups)
    masks = np.zeros((n, f + 1, f), dtype=bool)
    masks[:, 1:, :] = np.eye(f, dtype=bool)[None]  # step 0: nothing removed
    p = target_probability(model, setup.remove(np.asarray(x), masks), np.repeat(np.asarray(target), f + 1), setup.batch_size)
    p = p.reshape(n, f + 1)
    return p[:, :1] - p[:, 1:]


def coarse_features(setup: Setup) -> np.ndarray:
    """``(F,)``: the KernelSHAP player each feature belongs to: square patches of pixels, windows of steps, else the feature itself.

    KernelSHAP's regression needs many coalitions per player, so images are
    read in patches of side ``ceil(sqrt(H W / shap_features))`` (2x2 on 8x8
    digits) and signals in windows of ``ceil(L / shap_features)`` steps; a
    table's columns and a text's tokens are players as they are.
    """
    spatial = setup.shape[1:] if not setup.tokens else ()
    if len(spatial) == 2:
        h, w = spatial
        side = int(np.ceil(np.sqrt(h * w / setup.shap_features)))
        row, col = np.divmod(np.arange(h * w), w)
        return (row // side) * int(np.ceil(w / side)) + col // side
    if len(spatial) == 1:
        return np.arange(spatial[0]) // int(np.ceil(spatial[0] / setup.shap_features))
    return np.arange(len(setup.groups))


def shap_mask(setup: Setup, eligible: np.ndarray) -> tuple[np.ndarray, int]:
    """One example's Captum ``feature_mask`` ``(D,)`` (player ids ``0..P-1``) and ``P``, the number of real players.

    Players are the coarse features with an eligible feature; every dimension
    that is already the baseline (padding) is pooled into one last player
    (id ``P``), which has no effect on the model and gets no attribution.
    """
    coarse = coarse_features(setup)
    owner = am.owner_of(setup.groups, int(np.prod(setup.shape)))
    live = np.unique(coarse[eligible])  # coarse features with something to remove
    ids = np.full(coarse.max(initial=-1) + 2, len(live), dtype=np.int64)  # default: the pooled player
    ids[live] = np.arange(len(live))
    dims = np.where(owner >= 0, coarse[np.maximum(owner, 0)], -1)
    return ids[dims], len(live)


def kernel_shap(model, x, target, setup: Setup) -> np.ndarray:
    """KernelSHAP (Lundberg & Lee 2017): Captum's ``KernelShap``, one example at a time, seeded ``seed + i``.

    Each example's ``shap_samples`` coalitions are evaluated in one call of
    the batched forward pass (``perturbations_per_eval``), the target's logit
    explained as the gradient methods explain it. A player's Shapley value is
    shared out over its features by their number of input dimensions, so a
    patch's pixels share its value and the attributions keep its sum.
    """
    attr = require("captum.attr", "explain")
    xs, target = np.asarray(torch.as_tensor(x).cpu()), np.asarray(torch.as_tensor(target).cpu())
    explainer = attr.KernelShap(_logits_through(model, setup.batch_size))
    eligible = setup.eligible(xs)
    out = np.zeros((len(xs), len(setup.groups)))
    for i in range(len(xs)):
        mask, players = shap_mask(setup, eligible[i])
        if players == 0:  # nothing differs from the baseline: nothing to attribute
            continue
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            torch.manual_seed(setup.seed + i)
            warnings.simplefilter("ignore")  # Captum warns of its own defaults (the linear model's fit)
            phi = explainer.attribute(
                as_input(xs[i : i + 1]), baselines=as_input(setup.baseline[i : i + 1]), target=int(target[i]),
                feature_mask=torch.as_tensor(mask).view(1, *setup.shape), n_samples=setup.shap_samples,
                perturbations_per_eval=min(setup.shap_samples, setup.batch_size), return_input_shape=False)
        out[i] = am.share_out(phi.detach().double().numpy().ravel()[:players], mask, setup.groups)
    return out


def _logits_through(model: nn.Module, batch_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``inputs -> logits`` through the one batched forward pass: what Captum's perturbation methods call."""
    return lambda inputs: forward_pass(model, inputs, batch_size=batch_size).logits


def grad_cam(model, x, target, setup: Setup) -> np.ndarray:
    """Grad-CAM on the last conv stage's output, upsampled (bilinear) to the input and read per position."""
    layer = cam_layer(model)
    acts, grads = grad.layer_gradients(model, x, target, layer, chunk=setup.chunk)
    cam = torch.as_tensor(am.grad_cam(acts.cpu().numpy(), grads.cpu().numpy()), dtype=torch.float32)[:, None]  # (N, 1, *spatial)
    mode = "bilinear" if cam.dim() == 4 else "linear"
    up = nn.functional.interpolate(cam, size=setup.shape[1:], mode=mode, align_corners=False)[:, 0]  # (N, *spatial)
    return up.reshape(len(x), -1).numpy().astype(np.float64)


def attention_rollout(model, x, target, setup: Setup) -> np.ndarray:
    """What the model's output draws on from each token (or each patch's pixels), read from the attention rollout.

    The zoo transformer reads its prepended [CLS] token: the rollout's [CLS]
    row, its own column dropped. A mean-pooled encoder (MiniLM, its body's
    ``pooling = "mean"``) reads every kept token: the mean of their rows.
    """
    xs = np.asarray(torch.as_tensor(x).cpu())
    maps = forward_pass(model, xs, batch_size=setup.batch_size, logits=False, attention=True).attention
    rollout = am.attention_rollout([m.numpy() for m in maps])  # (N, T', T')
    pooling = getattr(getattr(model, "body", None), "pooling", "cls")
    read = am.rollout_readout(rollout, pooling, setup.eligible(xs) if pooling == "mean" else None)  # (N, T) or (N, patches)
    if setup.tokens:
        return read
    spatial = setup.shape[1:]
    t = torch.as_tensor(read, dtype=torch.float32)
    if len(spatial) == 2:
        side = int(round(np.sqrt(t.shape[1])))
        t = t.view(len(t), 1, side, -1)
        return nn.functional.interpolate(t, size=spatial, mode="nearest").reshape(len(t), -1).numpy().astype(np.float64)
    return nn.functional.interpolate(t[:, None], size=spatial, mode="nearest")[:, 0].numpy().astype(np.float64)


MethodFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, Setup], np.ndarray]
REGISTRY: dict[str, MethodFn] = {
    "saliency": saliency, "integrated_gradients": integrated_gradients, "smoothgrad": smoothgrad, "gradient_shap": gradient_shap,
    "ablation": ablation, "kernel_shap": kernel_shap, "grad_cam": grad_cam, "attention_rollout": attention_rollout,
}


def cam_layer(model: nn.Module) -> nn.Module | None:
    """The output of a CNN's last conv stage (its last ReLU after a conv), or ``None`` when the model is no CNN."""
    body = getattr(model, "body", model)
    modules = list(body.modules())
    convs = [i for i, m in enumerate(modules) if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    relus = [i for i, m in enumerate(modules) if isinstance(m, nn.ReLU) and convs and i > convs[-1]]
    return modules[relus[0]] if relus and not has_attention(model) else None


def applicable(method: str, model: nn.Module, differentiable: bool) -> str | None:
    """Why ``method`` does not apply to ``model`` (``None``: it does)."""
    if method in GRADIENT_METHODS[:4] and not differentiable:
        return "needs gradients"
    if method == "grad_cam" and (not differentiable or cam_layer(model) is None):
        return "needs a differentiable CNN (a conv stage)"
    if method == "attention_rollout" and not has_attention(model):
        return "needs attention maps"
    if method in CAPTUM_METHODS:
        return captum_missing()
    return None


def captum_missing() -> str | None:
    """Why Captum's methods and metrics cannot run here (``None``: it is installed); the rest of the check runs without it."""
    return None if importlib.util.find_spec("captum") is not None else "needs Captum: pip install 'assay[explain]'"


def target_probability(model: nn.Module, x: np.ndarray, target: np.ndarray, batch_size: int) -> np.ndarray:
    """Softmax probability of ``target`` for every row of ``x``, through the one batched forward pass."""
    return probability_of(forward_pass(model, x, batch_size=batch_size).logits, target)


def probability_of(logits: torch.Tensor, target: np.ndarray) -> np.ndarray:
    """``(N,)`` float64: the softmax probability of each row's ``target`` class, from ``(N, K)`` logits."""
    return torch.softmax(logits.double(), dim=1).gather(1, torch.as_tensor(target).view(-1, 1).long())[:, 0].numpy()


def randomised_copies(model: nn.Module, steps: int, seed: int):
    """Cascading randomisation (Adebayo et al. 2018): copies of ``model`` with its layers re-initialised from the top down.

    The parameterised layers, head first, are cut into ``steps`` contiguous
    blocks; copy ``k`` has blocks ``1..k`` re-initialised (the last copy: every layer).
    Yields ``(name of the deepest re-initialised layer, copy)``.
    """
    import copy

    named = [(n, m) for n, m in model.named_modules() if callable(getattr(m, "reset_parameters", None)) and any(True for _ in m.parameters(recurse=False))]
    named.reverse()
    if not named:
        return
    cuts = np.unique(np.linspace(0, len(named), min(steps, len(named)) + 1).round().astype(int))[1:]
    clone = copy.deepcopy(model)
    modules = dict(clone.named_modules())
    done = 0
    for step, cut in enumerate(cuts):
        with torch.random.fork_rng(devices=[]):  # seeded re-initialisation that leaves the caller's generator alone
            torch.manual_seed(seed + step)
            for name, _ in named[done:cut]:
                modules[name].reset_parameters()
        done = cut
        yield named[cut - 1][0], clone
