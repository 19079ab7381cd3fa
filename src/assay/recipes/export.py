"""The ``export`` recipe: a candidate that runs as an ONNX graph on ONNX Runtime."""

from __future__ import annotations

from ..models import exported
from ..models.candidate import Candidate
from ..models.inputs import as_input
from .base import Recipe, RecipeContext, derived_provenance, register_recipe

PRECISIONS = {"fp32": "onnx_fp32", "int8": "onnx_int8", "static_int8": "onnx_static_int8"}


@register_recipe
class Export(Recipe):
    """Export the parent to ONNX and run it with ONNX Runtime, in fp32 or int8.

    ``int8`` is dynamic (weights int8 per channel, activations quantized per
    batch); ``static_int8`` also fixes activation ranges from calibration
    batches of the training split, which suits convolutional models.

    Study file::

        [[recipe]]
        name = "cnn-onnx-int8"
        kind = "export"
        parent = "cnn"
        precision = "int8"
    """

    kind = "export"

    def __init__(self, *, parent: str, precision: str = "fp32", calibration_examples: int = 256) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{precision}'; available: {', '.join(PRECISIONS)}")
        if calibration_examples < 1:
            raise ValueError(f"'calibration_examples' must be at least 1, got {calibration_examples}")
        self.parent, self.precision, self.calibration_examples = parent, precision, calibration_examples

    def make(self, name: str, context: RecipeContext) -> Candidate:
        parent = context.float_parent(self.parent, f"[[recipe]] '{name}'", allow=("onnx_fp32",))
        example = as_input(context.task.train.x[:2])
        if parent.provenance.transforms:  # already a float graph (e.g. loaded from a .onnx file)
            data = parent.model.graph_bytes()
        else:
            data = exported.export_onnx(parent.model, example, flops_per_sample=parent.to("cpu").flops_per_sample(example[:1]))
        transform = PRECISIONS[self.precision]
        calibration = as_input(context.task.train.x[: self.calibration_examples]) if self.precision == "static_int8" else None
        model = exported.OnnxClassifier(exported.to_transform(data, transform, calibration))
        # Passing the arch starts the transforms afresh: the graph replaces whatever the parent was.
        return Candidate(name, model, derived_provenance(parent, self, transforms=(transform,), arch=parent.provenance.arch))
