"""The ``quantize`` recipe: a compressed child of a trained candidate."""

from __future__ import annotations

from ..models import quantized
from ..models.candidate import Candidate
from .base import Recipe, RecipeContext, derived_provenance, register_recipe


@register_recipe
class Quantize(Recipe):
    """Int8 weights for the parent's Linear, GRU and LSTM layers (activations quantized per batch), or fp16/bf16 weights.

    ``mode``: ``dynamic_int8`` (PyTorch's fbgemm kernels), ``fp16`` or
    ``bf16`` (half the size; on a CPU without native half-precision units
    often slower than fp32, which the efficiency check will show). ONNX
    Runtime int8, the faster int8 path on CPUs, is the ``export`` recipe.

    Study file::

        [[recipe]]
        name = "cnn-int8"
        kind = "quantize"
        parent = "cnn"
    """

    kind = "quantize"

    def __init__(self, *, parent: str, mode: str = "dynamic_int8") -> None:
        if mode not in quantized.TRANSFORMS:
            raise ValueError(f"unknown mode '{mode}'; available: {', '.join(quantized.TRANSFORMS)}")
        self.parent = parent
        self.mode = mode

    def make(self, name: str, context: RecipeContext) -> Candidate:
        parent = context.float_parent(self.parent, f"[[recipe]] '{name}'")
        model = quantized.apply_transform(parent.model, self.mode)
        return Candidate(name, model, derived_provenance(parent, self, transforms=(self.mode,)))
