"""The architecture examples/custom_arch.toml trains: a network of your own, in a file next to the study.

assay imports this file and calls ``small_resnet(input_shape, num_classes,
**arch_options)``; the module it returns maps a batch ``(B, *input_shape)``
to logits ``(B, num_classes)``. Giving it ``features(x)`` and a ``head``
(as here) lets the checks that read penultimate features (OOD scores,
embedding shift) use it; without them they say they skipped it.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input: a basic residual block at constant width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class SmallResNet(nn.Module):
    """A stem, ``blocks`` residual blocks, global average pooling and a linear head."""

    def __init__(self, channels: int, num_classes: int, width: int, blocks: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*(Block(width) for _ in range(blocks)))
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))  # (B, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)


def small_resnet(input_shape: tuple[int, ...], num_classes: int, *, width: int = 16, blocks: int = 2) -> nn.Module:
    """A small residual network for images ``(C, H, W)``."""
    return SmallResNet(input_shape[0], num_classes, width, blocks)
