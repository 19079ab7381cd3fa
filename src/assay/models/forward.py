"""The one batched forward pass: logits, penultimate features and attention maps, a batch at a time.

Everything that reads a model's outputs over a split goes through
``forward_pass``: the prediction cache the checks read
(``checks/predictions.py``), a frozen encoder's features in the recipes
(``transfer``, ``fewshot``, ``selfsup``) and a teacher's logits (``distill``).
Rows are taken ``batch_size`` at a time (a lazy image set is decoded batch by
batch) and each batch's outputs move to the CPU before the next one runs, so
the memory a pass needs is bounded by the batch, not by the split. A caller
that must not hold every row's features at once (the prediction cache,
writing them to a memory-mapped file) passes ``features_to``: each batch's
features go there instead of into the returned tensor.

Attention maps are returned by the call that asked for them (never kept on
the module), so two calls in flight cannot overwrite each other's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..data.lazy import batches
from ..errors import ModelError
from .inputs import as_input


@dataclass(frozen=True)
class Outputs:
    """What one pass over a set of inputs produced; every tensor float32 on the CPU, one row per input.

    Attributes:
        logits: ``(N, K)``, or ``None`` when not asked for.
        features: ``(N, D)`` penultimate features, or ``None``.
        attention: one ``(N, heads, T, T)`` tensor per attention block, or ``None``.
        seconds: wall time of the pass (device synchronised).
    """

    logits: torch.Tensor | None
    features: torch.Tensor | None
    attention: list[torch.Tensor] | None
    seconds: float


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` (a zoo ``Classifier``) can return attention weights: its body has ``encode(x, attention=True)``."""
    return callable(getattr(getattr(model, "body", None), "encode", None))


def forward_pass(
    model: nn.Module,
    x,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    logits: bool = True,
    features: bool = False,
    attention: bool = False,
    features_to: Callable[[int, torch.Tensor], None] | None = None,
) -> Outputs:
    """Run ``model`` over every row of ``x``, ``batch_size`` rows at a time, in inference mode.

    Args:
        model: a zoo ``Classifier`` or anything with its verbs (``forward``,
            ``features``, ``logits_and_features``: int8, half-precision and
            ONNX Runtime models have them).
        x: an array, a lazy dataset or a tensor; token ids stay integers.
        device: where the batches go (default: where the model's weights are).
        logits, features, attention: which outputs to keep.
        features_to: called with ``(first row, (B, D) float32 CPU features)``
            for each batch, in row order, instead of keeping the features
            (``Outputs.features`` is then ``None``).

    Returns:
        ``Outputs`` holding what was asked for. Each module's train/eval mode
        is as it was before the call.

    Raises:
        ModelError: attention asked of a model that has none.
    """
    if attention and not has_attention(model):
        raise ModelError(f"{type(model).__name__}: this model has no attention weights to return")
    if device is None:
        weight = next(model.parameters(), None)
        device = weight.device if weight is not None else torch.device("cpu")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    n = len(x)
    kept = {"logits": _Rows(n), "features": _Rows(n), "attention": []}
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            for start, batch in batches(x, batch_size):
                out, feats, maps = _one_batch(model, as_input(batch, device), logits, features or features_to is not None, attention)
                if logits:
                    kept["logits"].put(start, out)
                if features_to is not None:
                    features_to(start, feats.float().cpu())
                elif features:
                    kept["features"].put(start, feats)
                if attention:
                    kept["attention"] = kept["attention"] or [_Rows(n) for _ in maps]
                    for rows, layer in zip(kept["attention"], maps):
                        rows.put(start, layer)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
    finally:
        for module, training in modes:
            module.training = training
    return Outputs(
        logits=kept["logits"].tensor if logits else None,
        features=kept["features"].tensor if features and features_to is None else None,
        attention=[rows.tensor for rows in kept["attention"]] if attention else None,
        seconds=time.perf_counter() - started,
    )


class _Rows:
    """An ``(N, ...)`` float32 CPU tensor filled batch by batch: allocated once, so the peak is the result plus one batch."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.tensor = torch.empty(0)

    def put(self, start: int, batch: torch.Tensor) -> None:
        if self.tensor.dim() == 1:  # the first batch tells the row shape
            self.tensor = torch.empty((self.n, *batch.shape[1:]), dtype=torch.float32)
        self.tensor[start : start + len(batch)] = batch.float().cpu()


def _one_batch(model: nn.Module, x: torch.Tensor, logits: bool, features: bool, attention: bool):
    """``(logits, features, attention maps)`` of one batch, computing only what is asked for."""
    if attention:
        feats, maps = model.body.encode(x, attention=True)  # (B, D), [(B, heads, T, T)]
        return (model.head(feats) if logits else None), feats, maps
    if logits and features:
        out, feats = model.logits_and_features(x)
        return out, feats, None
    if features:
        return None, model.features(x), None
    return model(x), None, None
