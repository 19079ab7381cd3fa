"""The one model shape every architecture has: a feature extractor and a linear head.

``features(x)`` gives the penultimate embedding ``(B, D)`` and ``head`` maps it
to logits ``(B, K)``; ``Candidate.embed`` and the embedding-based checks rely on
that split. Kept apart from ``zoo`` so the modules that build architectures
(``sequence``, ``pretrained``) and the registry that names them import it
without importing each other.
"""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A feature extractor followed by a linear head."""

    frozen_prefixes: tuple[str, ...] = ()  # weights read from a pretrained source, not saved with the candidate

    def __init__(self, features: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.body = features
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features), features
