"""A fitted ensemble of decision trees as a PyTorch ``Classifier``.

Gradient-boosted trees are the classic baseline on tables. Fitted by
scikit-learn (``recipes/sklearn.py``), their nodes are copied into tensors
here so the ensemble is an ordinary candidate: saved as safetensors, run on
any device, read by every check through the same forward pass. ``features``
are the trees' leaf values ``(B, T)``; the head is a fixed linear map adding
each class's trees and its baseline score, so ``head(features)`` is the raw
score scikit-learn passes through its softmax (or sigmoid), and the
probabilities are equal.

All trees are padded to the same node count and walked ``depth`` steps at
once: a leaf points to itself, so rows that reach a leaf early stay there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .classifier import Classifier


class TreeEnsemble(nn.Module):
    """Leaf values of ``n_trees`` binary trees for each row of a flattened input.

    Buffers (one row per tree, padded to ``n_nodes``): ``feature`` read at a
    node, ``threshold`` (go left when ``x <= threshold``), ``left``/``right``
    children, ``value`` (a leaf's output), ``missing_left`` (where NaN goes).
    """

    differentiable = False  # piecewise constant: its input gradients are zero almost everywhere

    def __init__(self, n_trees: int, n_nodes: int, depth: int) -> None:
        super().__init__()
        self.depth = depth
        self.register_buffer("feature", torch.zeros(n_trees, n_nodes, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(n_trees, n_nodes))
        self.register_buffer("left", torch.zeros(n_trees, n_nodes, dtype=torch.long))
        self.register_buffer("right", torch.zeros(n_trees, n_nodes, dtype=torch.long))
        self.register_buffer("value", torch.zeros(n_trees, n_nodes))
        self.register_buffer("missing_left", torch.zeros(n_trees, n_nodes, dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        n, t = len(x), self.feature.shape[0]
        node = torch.zeros(n, t, dtype=torch.long, device=x.device)
        trees = torch.arange(t, device=x.device).expand(n, t)
        for _ in range(self.depth):
            value = x.gather(1, self.feature[trees, node])
            go_left = (value <= self.threshold[trees, node]) | (torch.isnan(value) & self.missing_left[trees, node])
            node = torch.where(go_left, self.left[trees, node], self.right[trees, node])
        return self.value[trees, node]


def trees(input_shape: Sequence[int], num_classes: int, *, n_trees: int = 1, n_nodes: int = 1, depth: int = 0) -> Classifier:
    """An empty ensemble of the given size (its buffers and head are filled from a fitted model or a saved candidate)."""
    head = nn.Linear(n_trees, num_classes)
    head.requires_grad_(False)  # a fixed sum of each class's trees, not a trained layer
    return Classifier(TreeEnsemble(n_trees, n_nodes, depth), head)


def below_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 threshold.

    For a float32 input ``x``, ``x <= t`` then holds exactly when it does in
    float64, so a row never takes the other branch because a threshold was
    rounded up.
    """
    values = np.asarray(values, dtype=np.float64)
    rounded = values.astype(np.float32)
    over = rounded.astype(np.float64) > values
    rounded[over] = np.nextafter(rounded[over], np.float32(-np.inf))
    return rounded
