"""What a candidate can do, declared instead of found by trying.

Checks read a candidate's ``Capabilities`` to choose how to measure it — a
white-box or a transfer attack, attributions or a recorded skip, embedding
scores or logit scores only — and the prediction cache asks only for what a
model can give. The answer comes from the model's own declarations (a class
attribute ``differentiable``, an ONNX graph's outputs, a body that can
``encode(x, attention=True)``, the ``devices`` a wrapped black box runs on and
its ``capability_reasons``) and the transforms in its provenance, so a new
kind of model states its limits in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import exported
from .forward import has_attention

CPU_ONLY = ("dynamic_int8", *exported.TRANSFORMS)  # PyTorch's int8 kernels and ONNX Runtime sessions run on the CPU


@dataclass(frozen=True)
class Capabilities:
    """What a candidate's model offers.

    Attributes:
        differentiable: its logits have meaningful gradients with respect to
            the input (false for int8 kernels, ONNX graphs and tree ensembles,
            whose gradients are absent or zero almost everywhere).
        features: it returns penultimate features for embedding-based checks.
        attention: it returns attention maps from the forward pass.
        devices: the device types it runs on (``"cpu"``, ``"cuda"``).
        reasons: ``(field, why)`` pairs a model declares for what it lacks
            (e.g. a user's black box), read before the generic reasons.
    """

    differentiable: bool
    features: bool
    attention: bool
    devices: tuple[str, ...]
    reasons: tuple[tuple[str, str], ...] = ()

    def lacks(self, need: str) -> str | None:
        """Why the model cannot serve ``need`` (a field name), or ``None`` when it can."""
        if getattr(self, need):
            return None
        declared = dict(self.reasons).get(need)
        if declared:
            return declared
        return {
            "differentiable": "its outputs have no usable input gradients (int8 kernels, an ONNX graph or a tree ensemble)",
            "features": "it returns no penultimate features (an ONNX graph without a 'features' output)",
            "attention": "it has no attention layers",
        }[need]


def capabilities_of(model: nn.Module, transforms: tuple[str, ...] = ()) -> Capabilities:
    """The capabilities of ``model`` after ``transforms`` (as recorded in its provenance)."""
    body = getattr(model, "body", None)
    cpu_only = any(t in CPU_ONLY for t in transforms)
    declared = getattr(model, "differentiable", True) and getattr(body, "differentiable", True)
    return Capabilities(
        differentiable=bool(declared) and not cpu_only,
        features=bool(getattr(model, "has_features", True)),
        attention=has_attention(model),
        devices=("cpu",) if cpu_only else tuple(getattr(model, "devices", ("cpu", "cuda"))),
        reasons=tuple(sorted(getattr(model, "capability_reasons", {}).items())),
    )
