"""Architectures by name.

Every model is a ``Classifier``: ``features(x)`` gives the penultimate
embedding ``(B, D)`` and ``head`` maps it to logits ``(B, K)``. That split is
what ``Candidate.embed`` and the embedding-based checks rely on.

    model = build("cnn", input_shape=(1, 8, 8), num_classes=10, channels=(32, 64, 128))
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..errors import SpecError, did_you_mean
from .classifier import Classifier
from .pretrained import pretrained
from .sequence import gru, transformer


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


ARCHITECTURES: dict[str, Callable[..., Classifier]] = {"mlp": mlp, "cnn": cnn, "gru": gru, "transformer": transformer, "pretrained": pretrained}
TOKEN_ARCHITECTURES = ("gru", "transformer")  # the ones that read token ids


def arch_options(name: str) -> list[str]:
    """The keyword options an architecture accepts."""
    return [p for p, v in inspect.signature(ARCHITECTURES[name]).parameters.items() if v.kind is v.KEYWORD_ONLY]


def build(name: str, *, input_shape: Sequence[int], num_classes: int, where: str = "arch", **options: Any) -> Classifier:
    """An untrained model from the zoo.

    Raises:
        SpecError: for an unknown architecture or option.
    """
    if name not in ARCHITECTURES:
        raise SpecError(f"{where}: unknown architecture '{name}'{did_you_mean(name, ARCHITECTURES)}; available: {', '.join(ARCHITECTURES)}")
    allowed = arch_options(name)
    for key in options:
        if key not in allowed:
            raise SpecError(f"{where}: architecture '{name}' has no option '{key}'{did_you_mean(key, allowed)}; options: {', '.join(allowed)}")
    return ARCHITECTURES[name](tuple(input_shape), num_classes, **options)
