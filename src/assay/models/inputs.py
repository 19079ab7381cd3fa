"""Model inputs as tensors: features as float32, token ids as int64."""

from __future__ import annotations

import numpy as np
import torch


def as_input(array, device: torch.device | str | None = None) -> torch.Tensor:
    """A batch (array, lazy slice or tensor) as the tensor a model takes."""
    a = np.asarray(array)
    dtype = torch.long if np.issubdtype(a.dtype, np.integer) else torch.float32
    return torch.as_tensor(a, dtype=dtype, device=device)
