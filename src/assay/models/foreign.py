"""Bring your own model: a user's ``nn.Module``, ``predict_proba`` estimator or callable as an assay ``Candidate``.

``as_candidate(name, model, task)`` wraps the object in an adapter
(``models/adapters.py``), runs it once on a few test inputs and refuses it
there, before anything is written, when its outputs cannot be judged (a tuple
or dict, a wrong shape, NaN, probabilities where logits were promised, an
error). What it gives back is a ``ForeignCandidate``: the prediction cache,
the checks and the store treat it as any candidate, and its declared
capabilities say what a black box cannot do (gradients, features), so those
checks record a skip with the reason.

What each kind of model is given:

* an ``nn.Module``: a float32 (token ids: int64) tensor batch of the task's
  inputs, on the run's device. It is judged in ``eval()`` mode; ``restore()``
  (or leaving ``with as_candidate(...) as c:``) gives it back in the mode and
  on the device it came in. A module on another device than the run's is
  moved there for the run and the move is recorded (a user expects the run's
  ``--device`` to apply), not refused; one spread over several devices is
  refused. A module may declare what it cannot do (``differentiable =
  False`` with ``capability_reasons``), how it reads its inputs
  (``assay_description``, a dict kept in its provenance's ``arch``, so part
  of its id) and lines for the report (``assay_notes``): a Hugging Face
  folder with its own tokenizer does (``models/hf_folder.py``).
* an object with ``predict_proba`` (a scikit-learn estimator or ``Pipeline``,
  or anything with that interface) and a plain callable: for a table task the
  raw rows as a pandas DataFrame (the task's encoded features decoded by
  ``task.pipeline.inverse``), so a pipeline with its own encoders works; for
  a text task the list of strings (``TextPipeline.recover``: the exact strings
  the task encoded; any row it has to decode is warned and counted), so a
  pipeline with its own vectorizer works; for other tasks a numpy array of
  the batch, flattened per example when the
  estimator was fitted on 2-D input (``n_features_in_``). ``classes_`` are
  mapped to the task's class names (by name, or by index when they are the
  integers 0..K-1); a callable's columns are taken in the task's class order.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import pickle
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import write_json
from ..data.lazy import batches
from ..data.task import Task
from ..data.text import TextFeed
from ..errors import ModelError
from .adapters import BlackBoxAdapter, ModuleAdapter
from .candidate import Candidate, Provenance, content_hash, library_versions
from .inputs import as_input

PROBE_ROWS = 4  # test inputs the model is tried on before it is accepted
EXTERNAL = "external"  # the recipe and arch name of every foreign candidate
OUTPUTS = ("logits", "probabilities")
_STATEFUL = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)  # layers whose train mode changes outputs


class ForeignCandidate(Candidate):
    """A candidate made from a user's object rather than by an assay recipe.

    Its provenance has ``recipe = "external"`` and ``arch.name = "external"``,
    with the object's qualified class name (``arch["class"]``) and a sha256
    digest of its state dict or of the pickled object (``arch["digest"]``).

    Saving: a module's weights are written as safetensors with the JSON
    description, like any candidate; a black box writes only its JSON
    description. Neither can be rebuilt from its files (the class is the
    user's), so a run resumes such a candidate only when the same object is
    passed again: its ``id`` then comes out the same and the cached
    predictions are reused.

    Attributes:
        kind: ``"module"``, ``"predict_proba"`` or ``"callable"``.
        source: the user's object.
        notes: what the report should say about how it was judged (mode, device).
    """

    def __init__(self, name: str, adapter: nn.Module, provenance: Provenance, *, kind: str, source: Any, notes: list[str]) -> None:
        inner = getattr(adapter, "inner", None)
        self._modes = [(m, m.training) for m in inner.modules()] if inner is not None else []
        self._home = _device_of(inner) if inner is not None else None
        super().__init__(name, adapter, provenance)  # puts the module in eval mode
        self.kind, self.source, self.notes = kind, source, notes

    def restore(self) -> None:
        """Give the user's module back in the train/eval mode and on the device it came in (a black box is left as it is).

        Call it once judging is over: a module put back in training mode
        would predict with dropout on.
        """
        if self._home is not None and _device_of(self.source) != self._home:
            self.source.to(self._home)
        for module, training in self._modes:
            module.training = training

    def __enter__(self) -> ForeignCandidate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    @cached_property
    def _tensors(self) -> dict[str, torch.Tensor]:
        return _state_tensors(self.source) if self.kind == "module" else {}

    @cached_property
    def id(self) -> str:
        """A 12-hex hash of the module's weights (none for a black box) and the provenance, which holds the object's digest."""
        return content_hash(self._tensors, self.provenance)

    @property
    def is_black_box(self) -> bool:
        return self.kind != "module"

    @torch.inference_mode()
    def timed_predict(self, x: torch.Tensor) -> Any:
        """What the efficiency check times: a module that gives logits called as it is, anything else through ``predict``.

        ``predict`` validates every batch's outputs (shape, finiteness), which
        adds 15-20% to a small module's latency; that cost is assay's, not the
        model's. Probabilities still go through ``predict``: their conversion
        to log-probabilities is part of how such a model is read.
        """
        if self.kind == "module" and self.model.outputs == "logits":
            return self.source(x.to(self.device))  # (B, K), unchecked: the probe and the prediction cache check it
        return self.predict(x)

    def parameter_count(self) -> int | None:
        """The module's parameters; ``None`` (unknown) for a black box, whose fitted attributes are not comparable weights."""
        return None if self.is_black_box else sum(p.numel() for p in self.source.parameters())

    def deploy_bytes(self) -> int | None:
        """A module's safetensors size; a black box's skops dump size when skops is installed, else ``None`` (unknown)."""
        if not self.is_black_box:
            return len(self.to_bytes())
        try:
            from skops.io import dumps
        except ImportError:
            return None
        try:
            return len(dumps(self.source))
        except Exception:  # noqa: BLE001 -- skops refuses objects it cannot describe; the size stays unknown
            return None

    def flops_per_sample(self, one: torch.Tensor) -> float:
        """A module's FLOPs as counted by torch; NaN for a black box (torch's counter does not see numpy)."""
        return float("nan") if self.is_black_box else super().flops_per_sample(one)

    def describe(self) -> dict[str, Any]:
        """The JSON description; ``parameters`` is ``null`` (unknown) for a black box, and ``notes`` say how it was judged."""
        return {**super().describe(), "notes": list(self.notes)}

    def to_bytes(self) -> bytes:
        """The module's weights as safetensors; empty for a black box (it has no weights file)."""
        return super().to_bytes() if not self.is_black_box else b""

    def save(self, folder: Path) -> Path:
        """A module: ``<name>.safetensors`` and ``<name>.json``; a black box: ``<name>.json`` only. Returns the first file written."""
        if not self.is_black_box:
            return super().save(folder)
        path = Path(folder) / f"{self.name}.json"
        write_json(path, self.describe())
        return path


def as_candidate(name: str, model: Any, task: Task, *, outputs: str | None = None, device: str | torch.device | None = None) -> ForeignCandidate:
    """A user's model as a candidate of ``task``, tried on a few test inputs and refused there if it cannot be judged.

    Args:
        name: the candidate's name in the run.
        model: a ``torch.nn.Module`` (forward: batch -> logits), an object with
            ``predict_proba``, or a callable from a batch to probabilities.
        task: the task it is judged on (input form, class names).
        outputs: ``"logits"`` or ``"probabilities"`` (converted to
            log-probabilities). Default: logits for a module, probabilities for
            a callable; ``predict_proba`` always gives probabilities.
        device: the run's device; a module elsewhere is moved there (recorded
            in ``notes``, undone by ``restore()``). Default: where it is.

    Returns:
        A ``ForeignCandidate``; call ``restore()`` (or use it as a context
        manager) to hand a module back in its original mode and device.

    Raises:
        ModelError: one line naming the candidate, for anything its first batch shows it cannot do.
    """
    kind = "module" if isinstance(model, nn.Module) else "predict_proba" if callable(getattr(model, "predict_proba", None)) else "callable" if callable(model) else None
    if kind is None:
        raise ModelError(f"{name}: a {type(model).__name__} is not a model assay can judge; pass an nn.Module, an object with predict_proba, or a callable returning probabilities")
    outputs = outputs or ("logits" if kind == "module" else "probabilities")
    if outputs not in OUTPUTS:
        raise ModelError(f'{name}: outputs={outputs!r} is not one of "logits", "probabilities"')
    if kind == "predict_proba" and outputs != "probabilities":
        raise ModelError(f'{name}: predict_proba gives probabilities; outputs="logits" applies only to an nn.Module or a callable')
    notes: list[str] = []
    if kind != "module":
        adapter = _black_box_adapter(name, model, task, kind, outputs)
        first = _probe(adapter, task, torch.device("cpu"))
        provenance = _provenance(model, task, kind, outputs, _object_digest(name, model, kind, first))
        return ForeignCandidate(name, adapter, provenance, kind=kind, source=model, notes=notes)
    adapter = _module_adapter(name, model, task, outputs, notes)
    notes += list(getattr(model, "assay_notes", []))  # what a module says of how it is judged (a Hugging Face folder's tokenizer)
    candidate = ForeignCandidate(name, adapter, _provenance(model, task, kind, outputs, None), kind=kind, source=model, notes=notes)
    try:
        home = candidate.device
        if device is not None and candidate.to(device).device != home:
            notes.append(f"moved from {home} to {candidate.device} for the run; restore() moves it back")
        _probe(adapter, task, candidate.device)
    except BaseException:
        candidate.restore()  # a refused module goes back exactly as it came
        raise
    return candidate


def _module_adapter(name: str, model: nn.Module, task: Task, outputs: str, notes: list[str]) -> ModuleAdapter:
    devices = sorted({str(t.device) for t in (*model.parameters(), *model.buffers())})
    if len(devices) > 1:
        raise ModelError(f"{name}: its weights are on more than one device ({', '.join(devices)}); put the model on one device, assay moves it to the run's")
    if model.training and any(isinstance(m, _STATEFUL) for m in model.modules()):
        notes.append("judged in eval mode; it was given in training mode")
    return ModuleAdapter(model, name=name, num_classes=task.num_classes, outputs=outputs)


def _black_box_adapter(name: str, model: Any, task: Task, kind: str, outputs: str) -> BlackBoxAdapter:
    if kind == "predict_proba":
        predict, source = model.predict_proba, "predict_proba"
        classes = getattr(model, "classes_", None)
        order = None if classes is None else class_order(name, list(np.asarray(classes).tolist()), task.class_names)
    else:
        predict, source, order = model, "the callable", None
    return BlackBoxAdapter(predict, _feeder(name, model, task), name=name, num_classes=task.num_classes, outputs=outputs, source=source, order=order)


def class_order(name: str, classes: list[Any], class_names: tuple[str, ...]) -> np.ndarray:
    """For each of the task's classes, the column of the model's output that holds it.

    ``classes`` (an estimator's ``classes_``) match by name when every one,
    as text, is a class name; otherwise they must be the integers 0..K-1.

    Raises:
        ModelError: naming both lists, when they do not match.
    """
    k = len(class_names)
    as_text = [str(int(c)) if isinstance(c, float) and float(c).is_integer() else str(c) for c in classes]
    if len(classes) == k and sorted(as_text) == sorted(class_names):
        return np.array([as_text.index(c) for c in class_names])
    if len(classes) == k and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes) and sorted(classes) == list(range(k)):
        return np.array([classes.index(j) for j in range(k)])
    raise ModelError(f"{name}: its classes_ {classes} do not match the task's classes {list(class_names)}; fit it on the task's labels (its class names, or indices 0..{k - 1})")


def _feeder(name: str, model: Any, task: Task):
    """How a tensor batch becomes what a black box takes: raw rows for a table read from rows, strings for text, else a numpy array (flattened when fitted on 2-D input)."""
    inverse = getattr(task.pipeline, "inverse", None)
    if task.modality == "tabular" and callable(inverse):  # a table read from rows: the rows, as the model was fitted on
        return lambda x: inverse(x.numpy())
    if task.modality == "text" and callable(getattr(task.pipeline, "recover", None)):  # the texts, as a vectorizer of its own reads them
        return TextFeed(task.pipeline, name)
    width = int(np.prod(task.input_shape))
    fitted = getattr(model, "n_features_in_", None)
    if fitted is None:
        return lambda x: x.numpy()
    if int(fitted) != width:
        raise ModelError(f"{name}: it was fitted on {int(fitted)} features, the task's inputs have shape {task.input_shape} ({width} values); fit it on the task's inputs")
    return lambda x: x.numpy().reshape(len(x), -1)  # (B, prod(input_shape))


def _probe(adapter: nn.Module, task: Task, device: torch.device) -> torch.Tensor:
    """The logits of the first few test inputs; refuses the model, naming it, when what comes back cannot be judged."""
    _, first = next(batches(task.test.x, PROBE_ROWS))
    x = as_input(first, device)
    with torch.inference_mode():
        return adapter.convert(adapter.raw(x), len(x), first=True)


def _provenance(model: Any, task: Task, kind: str, outputs: str, digest: str | None) -> Provenance:
    qualified = _qualified_name(model)
    arch = {"name": EXTERNAL, "input_shape": list(task.input_shape), "num_classes": task.num_classes,
            "class": qualified, "digest": digest or _state_digest(_state_tensors(model)), "kind": kind,
            **getattr(model, "assay_description", {})}  # what a module says of how it reads (a tokenizer of its own) is part of its identity
    versions = library_versions()
    package = qualified.split(".")[0]
    found = getattr(sys.modules.get(package), "__version__", None)
    if isinstance(found, str):
        versions[package] = found  # e.g. the scikit-learn that fitted it
    return Provenance(recipe=EXTERNAL, arch=arch, config={"outputs": outputs}, seed=0, data_hash=task.digest(), versions=versions)


def _qualified_name(model: Any) -> str:
    """``package.module.Class`` of an object, or ``package.module.function`` of a function."""
    owner = model if inspect.isroutine(model) else type(model)
    return f"{owner.__module__}.{owner.__qualname__}"


def _device_of(module: nn.Module) -> torch.device | None:
    found = next(iter((*module.parameters(), *module.buffers())), None)
    return None if found is None else found.device


def _state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as safetensors takes it: tied or strided tensors copied, since it refuses shared memory."""
    seen: set[int] = set()
    out = {}
    for key, t in module.state_dict().items():
        t = t.detach()
        ptr = t.untyped_storage().data_ptr()
        if (t.numel() and ptr in seen) or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add(ptr)
        out[key] = t
    return out


def _state_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode() + str(tensors[key].dtype).encode() + str(tuple(tensors[key].shape)).encode())
        h.update(tensors[key].cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _object_digest(name: str, model: Any, kind: str, first: torch.Tensor) -> str:
    """sha256 of a fitted estimator's pickle (hashed, never loaded).

    A callable pickles by reference (its name, not what it computes) and a
    lambda not at all, so its digest is of its name, its source and its
    outputs on the probe batch, with the candidate's name so that two
    lambdas written on one line are never taken for one model.
    """
    if kind == "predict_proba":
        try:
            return hashlib.sha256(pickle.dumps(model, protocol=4)).hexdigest()
        except Exception:  # noqa: BLE001 -- an estimator holding something unpicklable: fall back to what it computes
            pass
    try:
        text = inspect.getsource(model if inspect.isroutine(model) else type(model))
    except (OSError, TypeError):
        text = ""
    h = hashlib.sha256(json.dumps([name, _qualified_name(model), text]).encode())
    h.update(first.cpu().numpy().tobytes())
    return h.hexdigest()
