"""The user's own architecture, named in a study file as ``"models.py:make_net"``.

A reference is ``FILE.py:NAME`` (a Python file; a relative one is relative
to the study file: the study loader joins it, ``_options.resolve_paths``) or ``package.module:NAME``
(anything importable). **Importing it runs the user's code**, as running a
script they wrote would: assay does this only for code the user names in
their own study file, never for a file it was merely handed to judge (those
load from safetensors, ONNX, state dicts read with ``weights_only=True``, or
skops with its trusted-types check).

The module the callable returns is wrapped in ``UserNet`` so it has the verbs
the checks use (``features``, ``logits_and_features``) when it can: a module
with ``features(x)`` and a ``head`` (as assay's ``Classifier``) gives
penultimate features, any other declares ``has_features = False`` and the
checks that need features say so.

A saved candidate records the reference and the sha256 of its source file
(``arch = {"name": "user", "code": ..., "sha256": ...}``); rebuilding it
imports the same callable and warns when the file changed since.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._options import DOTTED_NAME, code_ref
from ..errors import ModelError, did_you_mean

log = logging.getLogger("assay")


def is_ref(text: object) -> bool:
    """Whether ``text`` reads as ``FILE.py:NAME`` or ``package.module:NAME`` (not a zoo name, not a Windows drive)."""
    return code_ref(text) is not None


def split_ref(ref: str) -> tuple[Path | None, str | None, str]:
    """``(file, None, name)`` for a ``.py`` file, ``(None, module, name)`` for an importable module.

    Raises:
        ModelError: the part before the colon is neither a ``.py`` file nor a dotted module name.
    """
    where, name = ref.rsplit(":", 1)
    if where.endswith(".py"):
        return Path(where), None, name
    if not DOTTED_NAME.match(where):
        raise ModelError(f"{ref}: '{where}' is neither a .py file nor a dotted module name; "
                         f"write \"models.py:{name}\" (next to the study file) or \"package.module:{name}\"")
    return None, where, name


def source_file(ref: str) -> Path | None:
    """The file that defines the reference's callable (for its hash), ``None`` when it has none (a built-in)."""
    path, module, _ = split_ref(ref)
    if path is not None:
        return path
    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def sha256_of(path: Path | None) -> str:
    """The hex sha256 of a file's bytes ('' when there is no file)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path is not None and Path(path).is_file() else ""


def load_callable(ref: str, where: str) -> Callable[..., Any]:
    """Import the callable a reference names. This runs the user's module.

    Raises:
        ModelError: the file or module is missing, importing it raised, or it has no such callable.
    """
    path, module_name, name = split_ref(ref)
    try:
        if path is not None:
            if not path.is_file():
                raise ModelError(f"{where}: {path}: file not found; put it next to the study file or give its path (\"models.py:{name}\")")
            module = _import_file(path)
        else:
            module = importlib.import_module(module_name)
    except ModelError:
        raise
    except ModuleNotFoundError as error:
        if path is None and error.name and module_name.startswith(error.name):
            raise ModelError(f"{where}: no module named '{module_name}'; give a file next to the study (\"models.py:{name}\") or an importable module") from None
        raise ModelError(f"{where}: importing {path or module_name} raised {_first_line(error)}; fix that module") from None
    except Exception as error:  # noqa: BLE001 -- user code raises anything
        raise ModelError(f"{where}: importing {path or module_name} raised {_first_line(error)}; fix that module") from None
    found = getattr(module, name, None)
    if not callable(found):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise ModelError(f"{where}: {path or module_name} has no callable '{name}'{did_you_mean(name, names)}; "
                         f"defined there: {', '.join(names) or 'none'}")
    return found


def _import_file(path: Path):
    """A module from a file, registered under a name of its own (its folder is searched for its own imports)."""
    path = path.resolve()
    name = f"assay_user_code.{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(str(path.parent))
    return module


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def call(fn: Callable[..., Any], args: tuple, options: dict[str, Any], where: str, ref: str) -> nn.Module:
    """``fn(*args, **options)``, refused in one line when the options do not fit, it raises, or it returns no ``nn.Module``."""
    try:
        inspect.signature(fn).bind(*args, **options)
    except TypeError as error:
        raise ModelError(f"{where}: {ref} cannot be called with {_shown(args, options)} ({error}); "
                         f"change arch_options or the callable's parameters") from None
    except ValueError:  # no signature to read (a builtin): just call it
        pass
    try:
        made = fn(*args, **options)
    except Exception as error:  # noqa: BLE001 -- user code raises anything
        raise ModelError(f"{where}: {ref}({_shown(args, options)}) raised {_first_line(error)}; fix the callable or arch_options") from None
    if not isinstance(made, nn.Module):
        raise ModelError(f"{where}: {ref} returned a {type(made).__name__}, not a torch.nn.Module; return the network itself")
    return made


def _shown(args: tuple, options: dict[str, Any]) -> str:
    return ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in options.items())])


class UserNet(nn.Module):
    """The user's module with the verbs checks use; ``has_features`` says whether it gives penultimate features."""

    frozen_prefixes: tuple[str, ...] = ()

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.has_features = callable(getattr(net, "features", None)) and isinstance(getattr(net, "head", None), nn.Module)
        self.source_note: str | None = None  # set when the source changed since the candidate was saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_features:
            raise ModelError(f"{type(self.net).__name__}: has no features(x) and head; the checks that need features skip it")
        return self.net.features(x)

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.net.head(features), features


def user(input_shape: Sequence[int], num_classes: int, *, code: str, sha256: str = "", options: dict | None = None,
         with_shape: bool = True) -> UserNet:
    """The zoo's ``user`` architecture: the callable ``code`` names, called as the study asked, wrapped in ``UserNet``.

    Args:
        code: ``FILE.py:NAME`` or ``package.module:NAME``.
        sha256: the source file's hash when the candidate was made; a
            different file now is logged as a warning and kept in ``source_note``.
        options: keyword options for the callable (the recipe's ``arch_options``).
        with_shape: call ``NAME(input_shape, num_classes, **options)`` (a
            ``train`` architecture) or ``NAME(**options)`` (a ``load`` module).
    """
    where = f"arch 'user' ({code})"
    fn = load_callable(code, where)
    args = (tuple(input_shape), num_classes) if with_shape else ()
    model = UserNet(call(fn, args, dict(options or {}), where, code))
    now = sha256_of(source_file(code))
    if sha256 and now != sha256:
        model.source_note = (f"{code}: the source file changed since this candidate was saved (sha256 {sha256[:12]} then, "
                             f"{now[:12] or 'missing'} now); the weights are loaded into today's code")
        log.warning("assay: %s", model.source_note)
    return model


def check_outputs(model: nn.Module, x: torch.Tensor, num_classes: int, where: str, ref: str) -> None:
    """One forward pass on a real batch must give logits ``(B, num_classes)``.

    Raises:
        ModelError: naming the shape seen and the shape expected, or the forward's first line of error.
    """
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as error:  # noqa: BLE001 -- user code raises anything
        raise ModelError(f"{where}: {ref} raised {_first_line(error)} on a batch of shape {tuple(x.shape)}; "
                         f"make its forward read the task's inputs") from None
    finally:
        model.train(was)
    want = (len(x), num_classes)
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{where}: {ref} returned a {type(out).__name__} from forward, not a tensor of logits {want}; return the logits alone")
    if tuple(out.shape) != want:
        raise ModelError(f"{where}: {ref} gives outputs of shape {tuple(out.shape)} for a batch of {len(x)}, "
                         f"expected {want} (one logit per class); fix its last layer")
