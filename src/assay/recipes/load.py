"""The ``load`` recipe: a model made elsewhere joins the study as a candidate.

It reads an assay candidate (``NAME.safetensors`` + ``NAME.json``, either
file named), an ONNX graph (``*.onnx``), a scikit-learn model saved with
skops (``*.skops``), a local Hugging Face folder for a text task
(``models/hf_folder.py``, read offline), or the user's own ``nn.Module`` class with its weights
(``module`` + ``weights``: safetensors or a PyTorch state dict), checks that
it fits the task, and keeps its provenance. ``assay compress`` starts from it.

Nothing in a model file runs: a state dict is read with
``torch.load(weights_only=True)`` (a file that needs code to load is
refused), a skops file with skops' trusted-types check (types it does not
trust by default load only when the study lists them in ``trusted``), and
pickle or joblib files are refused with the way to convert them. The code
that does run is the module the study names (``models/user_code.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .._options import CodeRef
from ..errors import AssayError, MissingDependency, ModelError
from ..models import exported, user_code, zoo
from ..models.candidate import Candidate, Provenance, verify
from ..models.hf_folder import load_hf_folder
from ..models.inputs import as_input
from .base import Recipe, RecipeContext, register_recipe

PICKLES = (".pkl", ".pickle", ".joblib")
STATE_DICTS = (".pt", ".pth")


@register_recipe
class Load(Recipe):
    """A saved model as a candidate.

    Study file::

        [[recipe]]
        name = "mine"
        kind = "load"
        path = "models/cnn.safetensors"   # or cnn.json, model.onnx, model.skops, or a Hugging Face folder (text tasks); relative to the study file
        # trusted = ["mylib.Scaler"]       # a .skops file's types that skops does not trust by default

        [[recipe]]
        name = "net"
        kind = "load"
        module = "models.py:Net"          # a class or factory, called as Net(**arch_options)
        weights = "net.pt"                # its state dict: .pt/.pth (torch.save(model.state_dict(), "net.pt")) or .safetensors
        arch_options = { width = 64 }
    """

    kind = "load"

    def __init__(self, *, path: Path | None = None, module: CodeRef | None = None, weights: Path | None = None,
                 arch_options: dict[str, Any] | None = None, trusted: list[str] | None = None) -> None:
        if (path is None) == (module is None):
            raise ValueError('give either path = "model.safetensors" (or .onnx, .skops), or module = "models.py:Net" with weights = "net.pt"')
        if module is not None and (weights is None or not user_code.is_ref(str(module))):
            raise ValueError('module = "models.py:Net" needs weights = "net.pt" (or .pth, .safetensors)' if weights is None else
                             f'module must read "FILE.py:Class" or "package.module:Class", got "{module}"')
        if module is None and (weights is not None or arch_options is not None):
            raise ValueError(f"'{'weights' if weights is not None else 'arch_options'}' goes with module = \"models.py:Net\"; remove it, or add module")
        if trusted is not None and not str(path).endswith(".skops"):
            raise ValueError("'trusted' applies to a .skops file only; remove it")
        self.path = None if path is None else str(path)
        self.module = None if module is None else str(module)
        self.weights = None if weights is None else str(weights)
        self.arch_options, self.trusted = arch_options, trusted

    def check_task(self, task, where: str) -> None:
        """The file exists, has a known format, nothing in it would run, and the model it holds fits the task."""
        if self.module is not None:
            _check_fits(self._user_candidate("mine", task, where), task, Path(self.weights))
            return
        path = self._file()
        if path.is_dir():
            load_hf_folder(path, task, where)
            return
        if path.suffix == ".skops":
            self._estimator(path, where)
            return
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
        if path.suffix in PICKLES:  # refused by name: loading a pickle runs whatever it holds
            raise ModelError(f"{path}: a pickle/joblib file can run code when loaded, so assay does not open it; convert it once where it was made: "
                             f"import joblib, skops.io; skops.io.dump(joblib.load(\"{path.name}\"), \"{path.stem}.skops\") -- then path = \"{path.stem}.skops\"")
        if path.is_dir():
            return path  # a Hugging Face folder: load_hf_folder checks what it holds
        if not path.is_file():
            raise ModelError(f"{path}: model file not found; give a NAME.safetensors (with its NAME.json), a .onnx or a .skops file, or a Hugging Face folder (relative to the study file)")
        if path.suffix in STATE_DICTS:
            raise ModelError(f"{path}: unknown model format '{path.suffix}' on its own: a PyTorch state dict needs its class, "
                             f"module = \"models.py:Net\" with weights = \"{path.name}\"")
        if path.suffix not in (".onnx", ".safetensors", ".json", ".skops"):
            raise ModelError(f"{path}: unknown model format '{path.suffix}'; give a .safetensors (with its .json), a .onnx or a .skops file")
        return path

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        where = f"[[recipe]] '{name}'"
        if self.module is not None:
            candidate, path = self._user_candidate(name, task, where, seed=context.seed), Path(self.weights)
        else:
            path = self._file()
            if path.is_dir():
                from ..models.foreign import as_candidate

                return as_candidate(name, load_hf_folder(path, task, where), task, device=context.device)  # checked on a first batch
            if path.suffix == ".skops":
                from ..models.foreign import as_candidate

                return as_candidate(name, self._estimator(path, where), task, device=context.device)  # a black box, checked on a first batch
            if path.suffix == ".onnx":
                arch = {"name": "onnx", "input_shape": list(task.input_shape), "num_classes": task.num_classes}
                provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest(),
                                        transforms=("onnx_fp32",))
                candidate = Candidate(name, exported.OnnxClassifier.from_file(path), provenance)
            else:
                loaded = Candidate.load(path.parent, path.stem)
                candidate = Candidate(name, loaded.model, loaded.provenance, loaded.training)
        _check_fits(candidate, task, path)
        return candidate

    def _user_candidate(self, name: str, task, where: str, seed: int = 0) -> Candidate:
        """The study's ``module`` built with ``arch_options``, its state dict loaded (nothing in the weights file runs)."""
        from .weights import read_state_dict

        options = {"code": self.module, "sha256": user_code.sha256_of(user_code.source_file(self.module)),
                   "options": dict(self.arch_options or {}), "with_shape": False}
        try:
            model = zoo.build("user", input_shape=task.input_shape, num_classes=task.num_classes, where=where, **options)
        except ModelError as error:  # user_code names the architecture; the study names the recipe
            raise ModelError(str(error).replace(f"arch 'user' ({self.module})", where, 1)) from None
        state = read_state_dict(Path(self.weights), where)
        try:
            model.net.load_state_dict(state, strict=True)
        except Exception as error:  # noqa: BLE001 -- missing, unexpected or misshapen tensors
            why = " ".join(line.strip() for line in str(error).splitlines()[1:])[:200] or type(error).__name__  # line 1 only says "Error(s)"
            raise ModelError(f"{where}: {self.weights}: the weights do not fit {self.module} ({why}); "
                             f"give the class and arch_options they were saved from") from None
        arch = {"name": "user", "input_shape": list(task.input_shape), "num_classes": task.num_classes, **options}
        return Candidate(name, model, Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=seed, data_hash=task.digest()))

    def _estimator(self, path: Path, where: str):
        from .weights import read_skops

        return read_skops(path, list(self.trusted or []), where)


def _check_fits(candidate: Candidate, task, path: Path) -> None:
    """One prediction on two test inputs must give one logit per class."""
    try:
        logits = candidate.predict(as_input(task.test.x[:2]))
    except Exception as error:  # noqa: BLE001 -- torch and onnxruntime raise many types for a wrong input
        raise ModelError(f"{path}: the model cannot read this task's inputs of shape {tuple(task.input_shape)} ({str(error).splitlines()[0]}); load it with the task it was made for") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != task.num_classes:
        raise ModelError(f"{path}: the model gives outputs of shape {tuple(logits.shape)}, the task has {task.num_classes} classes; load it with the task it was made for")
