"""Choosing the device: ``auto`` is CUDA when present, else the CPU."""

from __future__ import annotations

import torch

from ..errors import SpecError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch device.

    Raises:
        SpecError: when CUDA is asked for and not available, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SpecError(f"--device {name}: unknown device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"--device {name}: CUDA is not available on this machine; use --device auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise SpecError(f"--device {name}: only cpu and cuda are supported; use --device auto")
    return device
