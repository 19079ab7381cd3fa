"""Architectures by name.

Every built-in model is a ``Classifier``: ``features(x)`` gives the
penultimate embedding ``(B, D)`` and ``head`` maps it to logits ``(B, K)``.
That split is what ``Candidate.embed`` and the embedding-based checks rely
on; the user's own architecture (``user``, ``models/user_code.py``) has it
when its module does, and says so otherwise.

    model = build("cnn", input_shape=(1, 8, 8), num_classes=10, channels=(32, 64, 128))
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from ..errors import SpecError, did_you_mean
from .classifier import Classifier
from .pretrained import pretrained
from .sequence import gru, transformer
from .trees import trees
from .user_code import user


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: Sequence[int] = (256, 128),
    dropout: float = 0.1,
) -> Classifier:
    """A multilayer perceptron on flattened inputs; GELU, LayerNorm, dropout."""
    width = math.prod(input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(dropout)]
        width = h
    return Classifier(nn.Sequential(*layers), nn.Linear(width, num_classes))


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    channels: Sequence[int] = (32, 64, 128),
    kernel_size: int = 3,
    dropout: float = 0.2,
) -> Classifier:
    """A small VGG-style CNN for images ``(C, H, W)`` or signals ``(C, L)``.

    Each stage is conv + BatchNorm + ReLU; a max-pool by 2 follows each stage
    but the last while the feature map is longer than 2. Global average
    pooling makes the head independent of the input size.
    """
    if len(input_shape) not in (2, 3):
        raise SpecError(f"arch 'cnn': needs images (C, H, W) or signals (C, L), got shape {tuple(input_shape)}; use 'mlp' for this task")
    conv, norm, pool, gap = (
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
        if len(input_shape) == 3
        else (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d)
    )
    c, size = input_shape[0], min(input_shape[1:])
    layers: list[nn.Module] = []
    for i, out in enumerate(channels):
        layers += [conv(c, out, kernel_size, padding=kernel_size // 2, bias=False), norm(out), nn.ReLU(inplace=True)]
        if i < len(channels) - 1 and size > 2:
            layers.append(pool(2))
            size //= 2
        c = out
    layers += [gap(1), nn.Flatten(), nn.Dropout(dropout)]  # (B, C)
    return Classifier(nn.Sequential(*layers), nn.Linear(c, num_classes))


ARCHITECTURES: dict[str, Callable[..., Classifier]] = {
    "mlp": mlp, "cnn": cnn, "gru": gru, "transformer": transformer, "pretrained": pretrained,
    "trees": trees,  # a fitted tree ensemble (recipes/sklearn.py), not trained by the loop
    "user": user,  # the user's own callable, arch = "models.py:make_net" in a study file (models/user_code.py)
}
TOKEN_ARCHITECTURES = ("gru", "transformer")  # the ones that read token ids


def arch_options(name: str) -> list[str]:
    """The keyword options an architecture accepts."""
    return [p for p, v in inspect.signature(ARCHITECTURES[name]).parameters.items() if v.kind is v.KEYWORD_ONLY]


def unknown_arch(name: object) -> str:
    """``unknown architecture 'x' (did you mean 'y'?); available: ...``."""
    named = [a for a in ARCHITECTURES if a != "user"]
    return (f"unknown architecture {name!r}{did_you_mean(str(name), named)}; available: {', '.join(named)}, "
            f"or your own as arch = \"models.py:make_net\"")


def check_arch(name: str, options: Mapping[str, Any], where: str = "arch") -> None:
    """Validate an architecture name and its options (names, types, ranges) without building anything.

    Raises:
        SpecError: for an unknown architecture, an unknown option or a bad value.
    """
    from .._options import check_options

    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise SpecError(f"{where}: {unknown_arch(name)}")
    fn = ARCHITECTURES[name]
    check_options(fn, options, f"{where} ('{name}')", skip=("input_shape", "num_classes"), what="option")


def build(name: str, *, input_shape: Sequence[int], num_classes: int, where: str = "arch", **options: Any) -> Classifier:
    """An untrained model from the zoo.

    Raises:
        SpecError: for an unknown architecture, option or option value.
    """
    check_arch(name, options, where)
    return ARCHITECTURES[name](tuple(input_shape), num_classes, **options)


def training_bytes(name: str, *, input_shape: Sequence[int], num_classes: int, batch_size: int, where: str = "arch", **options: Any) -> int:
    """Estimated memory to train an architecture: weights, gradients and AdamW's two moments, plus one batch's activations.

    The model is built on PyTorch's ``meta`` device (shapes only, nothing
    allocated), so a model far too large is measured without being made.
    Raises SpecError when the architecture cannot take this input shape.
    """
    import torch

    if name in ("pretrained", "user"):  # an encoder's size is read when it loads; user code is not run on the meta device
        return 0
    with torch.device("meta"):
        model = build(name, input_shape=input_shape, num_classes=num_classes, where=where, **options)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    activations = 0

    def count(_module, _inputs, output) -> None:
        nonlocal activations
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                activations += t.numel() * t.element_size()

    if name == "gru":  # PyTorch runs a GRU step by step on the meta device (about a second): count its states instead
        steps = input_shape[0] if len(input_shape) == 1 else input_shape[-1]
        embed, hidden, layers = options.get("embed_dim", 128), options.get("hidden", 128), options.get("layers", 1)
        return 4 * weights + 2 * 4 * batch_size * steps * (embed + 2 * 4 * hidden * layers)  # inputs + two directions of gates and states
    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        dtype = torch.long if name in TOKEN_ARCHITECTURES and options.get("vocab_size") else torch.float32
        with torch.device("meta"):
            model(torch.zeros((batch_size, *input_shape), dtype=dtype))
    except Exception:  # noqa: BLE001 -- a layer without a meta kernel: count the weights alone
        activations = 0
    finally:
        for h in hooks:
            h.remove()
    return 4 * weights + 2 * activations  # activations are kept for the backward pass, and their gradients made
