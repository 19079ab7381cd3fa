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
from .capabilities import Capabilities, capabilities_of


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
        return content_hash(self._tensors, self.provenance)

    @property
    def device(self) -> torch.device:
        """Where the model runs; int8 models always run on the CPU."""
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def capabilities(self) -> Capabilities:
        """What the model can do (gradients, features, attention, devices), read by checks to choose how to measure it."""
        return capabilities_of(self.model, tuple(self.provenance.transforms))

    def to(self, device: str | torch.device) -> Candidate:
        """Move the model to ``device`` when it can run there (int8 and ONNX Runtime models stay on the CPU)."""
        device = torch.device(device)
        if device.type in self.capabilities.devices and self.device != device:
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

        meta, prov, tensors = verify(folder, name)
        weights_path = Path(folder) / f"{name}.safetensors"
        model, problems = _rebuild(prov, tensors)
        if problems:
            raise ModelError(f"{weights_path}: weights do not fit architecture {prov.arch['name']} ({problems[0]}); the files do not belong together")
        training = dict(meta.get("training") or {})
        note = getattr(model, "source_note", None)  # the user's source file changed since saving (logged by user_code)
        if note:
            training["source_changed"] = note
        return cls(name, model, prov, training)


def content_hash(tensors: dict[str, torch.Tensor], provenance: Provenance) -> str:
    """The 12-hex id of weights and provenance (versions excluded); computable from a file's tensors before any model is built."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].cpu().reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes: bf16 has no numpy type
    prov = {k: v for k, v in asdict(provenance).items() if k != "versions"}
    h.update(json.dumps(prov, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def verify(folder: Path, name: str) -> tuple[dict[str, Any], Provenance, dict[str, torch.Tensor]]:
    """Read a saved candidate's files and check them before any model is built from them.

    The JSON is validated against the description schema, the weights are read
    from safetensors (never pickle), and the content hash of both must equal
    the recorded id; for a plain zoo model the weights' shapes are compared
    with the architecture built on the ``meta`` device (no memory taken), so a
    description claiming a huge model is refused before it is made.

    Raises:
        ModelError: one line naming the file and the fix.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    weights_path = folder / f"{name}.safetensors"
    if not weights_path.is_file():
        raise ModelError(f"{weights_path}: candidate file not found; save the candidate again or check the name")
    meta, prov = read_description(folder / f"{name}.json")
    if prov.arch["name"] == "external":
        raise ModelError(f"{folder / f'{name}.json'}: '{name}' was judged from a model given in code ({prov.arch.get('class', '?')}), "
                         "which assay does not rebuild from files; pass the same object again (assay.judge or Study(candidates=...))")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"{weights_path}: cannot read candidate ({str(error).splitlines()[0]}); the files are damaged, save it again") from None
    found = content_hash(tensors, prov)
    if found != meta["id"]:
        raise ModelError(f"{weights_path}: content hash {found} differs from the recorded {meta['id']}; the files were changed after saving, save the candidate again")
    # An encoder loads from its source, and user code is not run on the meta device: import_tensors checks both.
    if not prov.transforms and prov.arch["name"] in zoo.ARCHITECTURES and prov.arch["name"] not in ("pretrained", "user"):
        arch = dict(prov.arch)
        with torch.device("meta"):
            try:
                model = zoo.build(arch.pop("name"), input_shape=arch.pop("input_shape"), num_classes=arch.pop("num_classes"), where=str(folder / f"{name}.json"), **arch)
            except Exception as error:  # noqa: BLE001 -- the description names options the architecture refuses
                raise ModelError(f"{folder / f'{name}.json'}: arch {prov.arch.get('name')!r} cannot be built ({str(error).splitlines()[0]}); the file is damaged, save the candidate again") from None
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith(tuple(getattr(model, "frozen_prefixes", ()) or ("\x00",)))}
        for key, shape in expected.items():
            if key in tensors and tuple(tensors[key].shape) != shape:
                raise ModelError(f"{weights_path}: tensor '{key}' has shape {tuple(tensors[key].shape)}, arch {prov.arch['name']} needs {shape}; the files do not belong together")
    return meta, prov, tensors


# The description's schema: field -> type (checked with the study file's own type checker).
_SCHEMA: dict[str, Any] = {
    "name": str, "id": str, "recipe": str, "arch": dict, "config": dict, "seed": int, "data_hash": str,
    "parent": str | None, "parent_id": str | None, "transforms": list[str], "versions": dict,
}
_ARCH_SCHEMA: dict[str, Any] = {"name": str, "input_shape": list[int], "num_classes": int}


def read_description(path: Path) -> tuple[dict[str, Any], Provenance]:
    """A saved candidate's JSON description and its provenance, without loading the weights.

    Raises:
        ModelError: when the file is missing or is not an assay candidate's description.
    """
    from .._options import conforms, describe, toml_text

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: candidate file not found; save the candidate again or check the name")
    damaged = "the file is damaged or not an assay candidate's description; save the candidate again"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelError(f"{path}: not valid JSON ({str(error).splitlines()[0][:80]}); {damaged}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: holds a JSON {type(meta).__name__}, not an object; {damaged}")
    for schema, record, prefix in ((_SCHEMA, meta, ""), (_ARCH_SCHEMA, meta.get("arch"), "arch.")):
        for key, kind in schema.items():
            if key not in record:
                raise ModelError(f"{path}: field '{prefix}{key}' is missing; {damaged}")
            if not conforms(record[key], kind):
                raise ModelError(f"{path}: field '{prefix}{key}' must be {describe(kind)}, got {toml_text(record[key])[:60]}; {damaged}")
    arch = meta["arch"]
    known = (*zoo.ARCHITECTURES, "onnx", "skops", "external")  # external: a user's object, described but not rebuilt (models/foreign.py)
    if arch["name"] not in known:
        raise ModelError(f"{path}: unknown architecture {arch['name']!r}; {damaged}")
    if not (len(meta["id"]) == 12 and all(c in "0123456789abcdef" for c in meta["id"])):
        raise ModelError(f"{path}: field 'id' must be 12 hex digits, got {meta['id'][:20]!r}; {damaged}")
    if not all(n >= 1 for n in arch["input_shape"]) or arch["num_classes"] < 2:
        raise ModelError(f"{path}: arch input_shape {arch['input_shape']} and num_classes {arch['num_classes']} must be positive (2+ classes); {damaged}")
    known_transforms = (*quantized.TRANSFORMS, *exported.TRANSFORMS) if hasattr(quantized, "TRANSFORMS") else None
    unknown = [t for t in meta["transforms"] if known_transforms is not None and t not in known_transforms]
    if unknown:
        raise ModelError(f"{path}: unknown transform {unknown[0]!r}; {damaged}")
    if arch["name"] in zoo.ARCHITECTURES and not meta["transforms"]:
        options = {k: v for k, v in arch.items() if k not in ("name", "input_shape", "num_classes")}
        try:
            zoo.check_arch(arch["name"], options, f"{path} arch")
        except Exception as error:  # noqa: BLE001
            raise ModelError(f"{str(error).splitlines()[0]}; {damaged}") from None
    if "training" in meta and not isinstance(meta["training"], (dict, type(None))):
        raise ModelError(f"{path}: field 'training' must be an object; {damaged}")
    fields = {k: meta[k] for k in Provenance.__dataclass_fields__}
    return meta, Provenance(**{**fields, "transforms": tuple(fields["transforms"])})


def _rebuild(prov: Provenance, tensors: dict[str, torch.Tensor]) -> tuple[nn.Module, list[str]]:
    """The model a provenance describes, with ``tensors`` loaded; problems found, if any."""
    if prov.transforms and prov.transforms[-1] in exported.TRANSFORMS:  # the graph is the whole model
        if "onnx" not in tensors:
            return nn.Identity(), ["missing tensor 'onnx'"]
        return exported.OnnxClassifier(tensors["onnx"]), []
    if prov.arch["name"] == "skops":  # a fitted estimator kept as skops bytes (models/skops_model.py)
        from .skops_model import SkopsClassifier

        if "skops" not in tensors or not isinstance(prov.arch.get("trusted"), list):
            return nn.Identity(), ["missing tensor 'skops' or arch 'trusted'"]
        return SkopsClassifier.from_tensor(tensors["skops"], prov.arch["trusted"], prov.arch["num_classes"], prov.arch.get("class", "sklearn")), []
    arch = dict(prov.arch)
    model = zoo.build(arch.pop("name"), input_shape=arch.pop("input_shape"), num_classes=arch.pop("num_classes"), **arch)
    for transform in prov.transforms:
        model = quantized.apply_transform(model, transform)
    return model, quantized.import_tensors(model, tensors)
