"""A fitted scikit-learn-compatible estimator as a black-box classifier that saves with its candidate.

The ``sklearn`` recipe turns logistic regression and histogram gradient
boosting into tensors; any other estimator stays what it is and runs through
``predict_proba``, behind ``models/adapters.BlackBoxAdapter`` (the same
output checks and capability declarations as a user's black box). What makes
it a candidate that survives a resume is that the estimator is kept as skops
bytes in a ``uint8`` buffer: the candidate's safetensors file holds it, the
content hash covers it, and ``Candidate.load`` rebuilds it with
``skops.io.loads`` trusting only the types recorded when it was saved
(``arch["trusted"]``, which the content hash also covers). Nothing is pickled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError, require
from .adapters import BlackBoxAdapter

ARCH = "skops"  # the arch name in a candidate's description


def dump(estimator: Any) -> tuple[bytes, list[str]]:
    """The estimator as skops bytes, and the types in them that skops does not trust by default (assay made the object)."""
    sio = require("skops.io", "sklearn")
    try:
        blob = sio.dumps(estimator)
    except Exception as error:  # noqa: BLE001 -- skops refuses objects it cannot describe
        raise ModelError(f"{type(estimator).__name__}: skops cannot save it ({str(error).splitlines()[0][:160]}); "
                         "use an estimator skops can save, so the run can resume") from None
    return blob, sorted(sio.get_untrusted_types(data=blob))


class SkopsClassifier(nn.Module):
    """``forward(x) -> log predict_proba (B, K)`` of a fitted estimator on the flattened batch (what it was fitted on).

    Args:
        estimator: fitted, with ``predict_proba`` and ``classes_`` among ``0..K-1``.
        blob: its skops bytes (kept as the ``skops`` buffer, so it is saved with the weights).
        num_classes: K; a class absent from the estimator's ``classes_`` gets probability 0.
        name: for refusals.
    """

    differentiable = False
    has_features = False
    devices = ("cpu",)
    capability_reasons = BlackBoxAdapter.capability_reasons

    def __init__(self, estimator: Any, blob: bytes, num_classes: int, name: str = "sklearn") -> None:
        super().__init__()
        self.estimator = estimator
        self.register_buffer("skops", torch.frombuffer(bytearray(blob), dtype=torch.uint8))
        classes = np.asarray(estimator.classes_)
        if not (np.issubdtype(classes.dtype, np.integer) and classes.min() >= 0 and classes.max() < num_classes):
            raise ModelError(f"{name}: its classes_ {classes.tolist()[:10]} are not class indices 0..{num_classes - 1}; fit it on the task's labels")

        def proba(x: np.ndarray) -> np.ndarray:  # (B, K): the estimator's columns placed at their classes
            out = np.zeros((len(x), num_classes))
            out[:, classes] = estimator.predict_proba(x)
            return out

        self.adapter = BlackBoxAdapter(proba, _flat, name=name, num_classes=num_classes, outputs="probabilities", source="predict_proba")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(x)  # (B, K) log-probabilities

    @classmethod
    def from_tensor(cls, blob: torch.Tensor, trusted: list[str], num_classes: int, name: str) -> SkopsClassifier:
        """Rebuild from a saved ``skops`` buffer, trusting exactly the recorded types.

        Raises:
            ModelError: the bytes hold types beyond the recorded ones, or cannot be read.
        """
        sio = require("skops.io", "sklearn")
        data = blob.cpu().numpy().tobytes()
        try:
            extra = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted))
            if extra:
                raise ModelError(f"{name}: the saved estimator holds types not recorded when it was saved ({', '.join(extra[:5])}); save the candidate again")
            estimator = sio.loads(data, trusted=list(trusted))
        except ModelError:
            raise
        except Exception as error:  # noqa: BLE001 -- a damaged or foreign file
            raise ModelError(f"{name}: cannot read the saved estimator ({str(error).splitlines()[0][:160]}); save the candidate again") from None
        return cls(estimator, data, num_classes, name)


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.numpy().astype(np.float64).reshape(len(x), -1)  # (B, prod(input_shape)), as the recipe fitted it
