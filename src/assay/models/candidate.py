"""Candidate: a model plus where it came from.

A candidate is saved as two files, ``<name>.safetensors`` (weights, never
pickle) and ``<name>.json`` (provenance), and identified by a content hash
of both. A compressed model is a candidate too, with its parent recorded and
the structural transforms (e.g. ``dynamic_int8``) that loading reapplies.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_path, write_json
from ..errors import ModelError
from . import exported, quantized, zoo


@dataclass(frozen=True)
class Provenance:
    """How a candidate was made.

    Attributes:
        recipe: the recipe kind, e.g. ``"train"`` or ``"quantize"``.
        arch: architecture name, ``input_shape``, ``num_classes`` and options.
        config: the recipe's resolved options.
        seed: the seed it was made with.
        data_hash: the task's content hash.
        parent: the parent candidate's name, for derived candidates.
        parent_id: the parent's content hash.
        transforms: structural transforms applied after building ``arch``.
        versions: library versions at creation.
    """

    recipe: str
    arch: dict[str, Any]
    config: dict[str, Any]
    seed: int
    data_hash: str
    parent: str | None = None
    parent_id: str | None = None
    transforms: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=lambda: library_versions())


def library_versions() -> dict[str, str]:
    from .. import __version__

    return {"assay": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


class Candidate:
    """A model that can predict, embed and be saved, with its provenance.

    Args:
        name: the name in the study (unique within a run).
        model: a ``zoo.Classifier`` (possibly transformed, e.g. int8).
        provenance: how it was made.
        training: what training recorded (history, epochs, seconds); optional.
    """

    def __init__(self, name: str, model: nn.Module, provenance: Provenance, training: dict[str, Any] | None = None) -> None:
        self.name = name
        self.model = model.eval()
        self.provenance = provenance
        self.training = training or {}

    def __repr__(self) -> str:
        return f"Candidate(name={self.name!r}, recipe={self.provenance.recipe!r}, id={self.id!r})"

    @cached_property
    def _tensors(self) -> dict[str, torch.Tensor]:
        return quantized.export_tensors(self.model)

    @cached_property
    def id(self) -> str:
        """A 12-hex content hash of weights and provenance (versions excluded)."""
        h = hashlib.sha256()
        for key in sorted(self._tensors):
            h.update(key.encode())
            h.update(self._tensors[key].cpu().reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes: bf16 has no numpy type
        prov = {k: v for k, v in asdict(self.provenance).items() if k != "versions"}
        h.update(json.dumps(prov, sort_keys=True, default=str).encode())
        return h.hexdigest()[:12]

    @property
    def device(self) -> torch.device:
        """Where the model runs; int8 models always run on the CPU."""
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> Candidate:
        if not self.provenance.transforms and self.device != torch.device(device):  # quantized kernels are CPU-only
            self.model.to(device)
        return self

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` for a batch of inputs."""
        return self.model(x.to(self.device))

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, embeddings: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, when asked, penultimate features from one pass."""
        x = x.to(self.device)
        if not embeddings:
            return self.model(x), None
        return self.model.logits_and_features(x)

    @torch.inference_mode()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, D)``."""
        return self.model.features(x.to(self.device))

    @torch.inference_mode()
    def flops_per_sample(self, one: torch.Tensor) -> float:
        """Floating-point operations for one example ``one`` (a multiply-add counts 2)."""
        from torch.utils.flop_counter import FlopCounterMode

        counted_at_export = getattr(self.model, "flops_per_sample", None)
        if counted_at_export is not None:  # ONNX Runtime runs outside torch's counter
            return float(counted_at_export)
        with FlopCounterMode(display=False) as counter:
            self.predict(one)
        return float(counter.get_total_flops())

    def _frozen(self) -> list[torch.Tensor]:
        """Pretrained weights read from their source rather than saved with the candidate."""
        prefixes = getattr(self.model, "frozen_prefixes", ())
        return [p for n, p in self.model.named_parameters() if prefixes and n.startswith(prefixes)]

    def parameter_count(self) -> int:
        """Weights count: int8 weights included (they are not nn.Parameters), and a frozen pretrained encoder."""
        if hasattr(self.model, "parameter_count"):  # an exported graph counts its own
            return int(self.model.parameter_count())
        saved = sum(t.numel() for k, t in self._tensors.items() if t.is_floating_point() or k.endswith(".int8")) - sum(
            t.numel() for k, t in self._tensors.items() if k.endswith((".running_mean", ".running_var", ".scales", ".scale"))
        )
        return int(saved + sum(p.numel() for p in self._frozen()))

    def deploy_bytes(self) -> int:
        """Bytes needed to ship the model: its weights file plus any frozen pretrained weights it reads."""
        return len(self.to_bytes()) + sum(p.numel() * p.element_size() for p in self._frozen())

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for the store and the report."""
        return {
            "name": self.name,
            "id": self.id,
            **asdict(self.provenance),
            "parameters": self.parameter_count(),
            "training": self.training,
        }

    def to_bytes(self) -> bytes:
        """The weights file's exact content (safetensors)."""
        from safetensors.torch import save

        return save(self._tensors, metadata={"assay_id": self.id})

    def save(self, folder: Path) -> Path:
        """Write ``<name>.safetensors`` and ``<name>.json`` atomically; return the weights path."""
        folder = Path(folder)
        weights = folder / f"{self.name}.safetensors"
        with atomic_path(weights) as tmp:
            tmp.write_bytes(self.to_bytes())
        write_json(folder / f"{self.name}.json", self.describe())
        return weights

    @classmethod
    def load(cls, folder: Path, name: str) -> Candidate:
        """Rebuild a saved candidate from its safetensors and JSON.

        Raises:
            ModelError: when a file is missing or does not match its description.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        meta_path, weights_path = folder / f"{name}.json", folder / f"{name}.safetensors"
        if not weights_path.is_file():
            raise ModelError(f"{weights_path}: candidate file not found; save the candidate again or check the name")
        meta, prov = read_description(meta_path)
        try:
            tensors = load_file(str(weights_path))
        except SafetensorError as error:
            raise ModelError(f"{weights_path}: cannot read candidate ({error}); the files are damaged, save it again") from None
        model, problems = _rebuild(prov, tensors)
        if problems:
            raise ModelError(f"{weights_path}: weights do not fit architecture {prov.arch['name']} ({problems[0]}); the files do not belong together")
        candidate = cls(name, model, Provenance(**{**asdict(prov), "transforms": tuple(prov.transforms)}), meta.get("training"))
        if candidate.id != meta["id"]:
            raise ModelError(f"{weights_path}: content hash {candidate.id} differs from the recorded {meta['id']}; the file was changed after saving")
        return candidate


def read_description(path: Path) -> tuple[dict[str, Any], Provenance]:
    """A saved candidate's JSON description and its provenance, without loading the weights.

    Raises:
        ModelError: when the file is missing or is not an assay candidate's description.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: candidate file not found; save the candidate again or check the name")
    try:
        meta = json.loads(path.read_text())
        return meta, Provenance(**{k: meta[k] for k in Provenance.__dataclass_fields__})
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path.with_suffix('')}: cannot read candidate ({error}); the files are damaged, save it again") from None


def _rebuild(prov: Provenance, tensors: dict[str, torch.Tensor]) -> tuple[nn.Module, list[str]]:
    """The model a provenance describes, with ``tensors`` loaded; problems found, if any."""
    if prov.transforms and prov.transforms[-1] in exported.TRANSFORMS:  # the graph is the whole model
        if "onnx" not in tensors:
            return nn.Identity(), ["missing tensor 'onnx'"]
        return exported.OnnxClassifier(tensors["onnx"]), []
    arch = dict(prov.arch)
    model = zoo.build(arch.pop("name"), input_shape=arch.pop("input_shape"), num_classes=arch.pop("num_classes"), **arch)
    for transform in prov.transforms:
        model = quantized.apply_transform(model, transform)
    return model, quantized.import_tensors(model, tensors)
