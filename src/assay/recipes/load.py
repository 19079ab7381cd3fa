"""The ``load`` recipe: a model made elsewhere joins the study as a candidate.

It reads an assay candidate (``NAME.safetensors`` + ``NAME.json``, either
file named) or an ONNX graph (``*.onnx``), checks that it fits the task, and
keeps its own provenance. ``assay compress`` starts from it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import AssayError, MissingDependency, ModelError
from ..models import exported
from ..models.candidate import Candidate, Provenance, verify
from ..models.inputs import as_input
from .base import Recipe, RecipeContext, register_recipe


@register_recipe
class Load(Recipe):
    """A saved model as a candidate.

    Study file::

        [[recipe]]
        name = "mine"
        kind = "load"
        path = "models/cnn.safetensors"   # or cnn.json, or model.onnx; relative to the study file
    """

    kind = "load"

    def __init__(self, *, path: Path) -> None:
        self.path = str(path)

    def check_task(self, task, where: str) -> None:
        """The file exists, has a known format, and a saved candidate's files pass their schema and hash."""
        path = self._file()
        if path.suffix in (".safetensors", ".json"):
            _, prov, _ = verify(path.parent, path.stem)
            shape, classes = tuple(prov.arch["input_shape"]), prov.arch["num_classes"]
            if shape != tuple(task.input_shape) or classes != task.num_classes:
                raise ModelError(f"{path}: the model reads inputs {shape} into {classes} classes, the task has inputs {tuple(task.input_shape)} "
                                 f"and {task.num_classes} classes; load it with the task it was made for")
            return
        try:
            exported.OnnxClassifier.from_file(path).session  # parses the graph; nothing runs yet
        except MissingDependency:
            raise
        except AssayError as error:
            raise ModelError(f"{path}: {error}") from None
        except Exception as error:  # noqa: BLE001 -- onnxruntime raises its own types for a broken graph
            raise ModelError(f"{path}: cannot read the ONNX graph ({str(error).splitlines()[0][:120]}); export the model again") from None

    def _file(self) -> Path:
        path = Path(self.path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found; give a NAME.safetensors (with its NAME.json) or a .onnx file (relative to the study file)")
        if path.suffix not in (".onnx", ".safetensors", ".json"):
            raise ModelError(f"{path}: unknown model format '{path.suffix}'; give a .safetensors (with its .json) or a .onnx file")
        return path

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        path = self._file()
        if path.suffix == ".onnx":
            arch = {"name": "onnx", "input_shape": list(task.input_shape), "num_classes": task.num_classes}
            provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest(),
                                    transforms=("onnx_fp32",))
            candidate = Candidate(name, exported.OnnxClassifier.from_file(path), provenance)
        elif path.suffix in (".safetensors", ".json"):
            loaded = Candidate.load(path.parent, path.stem)
            candidate = Candidate(name, loaded.model, loaded.provenance, loaded.training)
        else:
            raise ModelError(f"{path}: unknown model format '{path.suffix}'; give a .safetensors (with its .json) or a .onnx file")
        _check_fits(candidate, task, path)
        return candidate


def _check_fits(candidate: Candidate, task, path: Path) -> None:
    """One prediction on two test inputs must give one logit per class."""
    try:
        logits = candidate.predict(as_input(task.test.x[:2]))
    except Exception as error:  # noqa: BLE001 -- torch and onnxruntime raise many types for a wrong input
        raise ModelError(f"{path}: the model cannot read this task's inputs of shape {tuple(task.input_shape)} ({str(error).splitlines()[0]}); load it with the task it was made for") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != task.num_classes:
        raise ModelError(f"{path}: the model gives outputs of shape {tuple(logits.shape)}, the task has {task.num_classes} classes; load it with the task it was made for")
