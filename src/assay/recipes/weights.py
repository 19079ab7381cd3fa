"""Reading a user's model files for the ``load`` recipe without running anything in them.

* a state dict: ``.safetensors`` (plain tensors), or ``.pt``/``.pth`` read
  with ``torch.load(weights_only=True)``, whose unpickler only builds
  tensors and plain containers: a file that needs code (a whole pickled
  model, a custom class) is refused with the way to save a state dict;
* a scikit-learn model saved with skops: ``skops.io.get_untrusted_types``
  first, and the types skops does not trust by default load only when the
  study lists them in ``trusted``.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, require


def read_state_dict(path: Path, where: str) -> dict[str, torch.Tensor]:
    """A state dict (name -> tensor) from ``.safetensors``, ``.pt`` or ``.pth``.

    Raises:
        ModelError: the file is missing, unreadable, would need code to load, or holds something else than a state dict.
    """
    save = 'torch.save(model.state_dict(), "net.pt")'
    if not path.is_file():
        raise ModelError(f"{where}: {path}: weights file not found; give its path relative to the study file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise ModelError(f"{where}: {path}: cannot read safetensors ({str(error).splitlines()[0][:120]}); save the weights again") from None
    if path.suffix not in (".pt", ".pth"):
        raise ModelError(f"{where}: {path}: unknown weights format '{path.suffix}'; give a state dict saved as .pt/.pth ({save}) or .safetensors")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused a global: nothing was run
        found = str(error).split("Unsupported global:")[-1].strip().splitlines()[0][:120] if "Unsupported global" in str(error) else "a Python object"
        raise ModelError(f"{where}: {path}: needs code to load ({found}), so it was not opened; save the state dict instead: {save}") from None
    except Exception as error:  # noqa: BLE001 -- truncated or not a torch file
        raise ModelError(f"{where}: {path}: cannot read it as a PyTorch file ({str(error).splitlines()[0][:120]}); save it again with {save}") from None
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        what = f"a dict with keys {list(state)[:5]}" if isinstance(state, Mapping) else f"a {type(state).__name__}"
        raise ModelError(f"{where}: {path}: holds {what}, not a state dict of tensors; save the model's own: {save}")
    return dict(state)


def read_skops(path: Path, trusted: list[str], where: str) -> Any:
    """A skops file's object, when every type in it is trusted (by skops' defaults or the study's ``trusted``).

    Raises:
        ModelError: untrusted types (named, with the ``trusted = [...]`` to add if the file is trusted), or an unreadable file.
    """
    sio = require("skops.io", "sklearn")
    try:
        untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(trusted))
    except Exception as error:  # noqa: BLE001 -- not a skops file
        raise ModelError(f"{where}: {path}: cannot read it as a skops file ({str(error).splitlines()[0][:120]}); save the model with skops.io.dump") from None
    if untrusted:
        listed = ", ".join(f'"{t}"' for t in untrusted)
        raise ModelError(f"{where}: {path}: holds types skops does not trust by default ({listed}); "
                         f"if you trust this file, add trusted = [{listed}] to the recipe")
    try:
        return sio.load(path, trusted=list(trusted))
    except Exception as error:  # noqa: BLE001 -- a damaged file
        raise ModelError(f"{where}: {path}: cannot load it ({str(error).splitlines()[0][:120]}); save the model with skops.io.dump again") from None
