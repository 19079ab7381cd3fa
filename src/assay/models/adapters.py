"""A user's model as an ordinary assay classifier: ``forward(x) -> logits (B, K)``.

``ModuleAdapter`` wraps a ``torch.nn.Module``; ``BlackBoxAdapter`` wraps an
object with ``predict_proba`` or a plain callable. Each is a small
``nn.Module``, so the prediction cache, ``Candidate.predict`` and the
efficiency timing see one more model, and each declares what it can do in the
attributes ``capabilities.py`` reads (``differentiable``, ``has_features``,
``devices``, ``capability_reasons``).

Every batch's outputs are validated (one tensor or array, ``(B, K)``, finite,
probabilities that are probabilities), so a model that goes bad half way
through a split is refused with a ``ModelError`` naming the candidate instead
of being trusted. Probabilities become log-probabilities: their softmax is the
probabilities again, so every check reads them as logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError

PROBABILITY_TOLERANCE = 1e-4  # how far a row of probabilities may sum from 1
_FLOOR = torch.finfo(torch.float32).tiny  # log(0) would be -inf; the smallest normal float32 keeps softmax exact


def _shape(batch: Any) -> tuple[int, ...]:
    return tuple(getattr(batch, "shape", (len(batch),)))


def call_model(name: str, fn: Callable[[Any], Any], batch: Any) -> Any:
    """``fn(batch)``, any error it raises turned into one line naming the candidate, the input shape and the error's first line."""
    try:
        return fn(batch)
    except ModelError:
        raise
    except Exception as error:  # noqa: BLE001 -- the user's code may raise anything; say which model and on what
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise ModelError(
            f"{name}: raised {type(error).__name__} on a batch of shape {_shape(batch)}: {first}; "
            "make it accept a batch of the task's inputs in that form"
        ) from error


def checked_logits(name: str, out: Any, *, rows: int, k: int, outputs: str, source: str, first: bool = False) -> torch.Tensor:
    """Validate what a model returned for ``rows`` inputs and give it back as float logits ``(rows, k)``.

    Args:
        name: the candidate, named in every refusal.
        out: what the model returned.
        outputs: ``"logits"`` or ``"probabilities"`` (converted to log-probabilities).
        source: what returned it, e.g. ``"forward"`` or ``"predict_proba"``, for the messages.
        first: the probe batch: also refuse probabilities where logits were promised.

    Raises:
        ModelError: a tuple, dict, list or other non-array; a wrong shape;
            NaN or infinite values; probabilities that are not probabilities.
    """
    if isinstance(out, (tuple, dict, list)):
        kind = type(out).__name__
        what = f" with keys {list(out)[:5]}" if isinstance(out, dict) else f" of {len(out)} items"
        fix = "return a numpy array or tensor" if source != "forward" else "return only the logits tensor"
        raise ModelError(f"{name}: {source} returned a {kind}{what}; {fix} of shape (B, K) = ({rows}, {k})")
    if isinstance(out, np.ndarray) and source != "forward":
        if not np.issubdtype(out.dtype, np.number):
            raise ModelError(f"{name}: {source} returned an array of {out.dtype}; return numbers, shape (B, K) = ({rows}, {k})")
        out = torch.from_numpy(np.ascontiguousarray(out))
    if not isinstance(out, torch.Tensor):
        expected = "a tensor" if source == "forward" else "a numpy array or tensor"
        raise ModelError(f"{name}: {source} returned a {type(out).__name__}; return {expected} of shape (B, K) = ({rows}, {k})")
    if tuple(out.shape) != (rows, k):
        raise ModelError(f"{name}: {source} returned shape {tuple(out.shape)}, expected (B, K) = ({rows}, {k}): one score per class of the task for each input")
    out = out.float()
    if not bool(torch.isfinite(out.detach()).all()):
        raise ModelError(f"{name}: {source} returned NaN or infinite values on a batch of {rows} inputs; fix the model (or its inputs' scaling) so every output is finite")
    if outputs == "probabilities":
        _refuse_non_probabilities(name, out.detach(), source)
        return torch.log(out.clamp_min(_FLOOR))
    if first and _looks_like_probabilities(out.detach()):
        raise ModelError(f'{name}: its outputs look like probabilities (every row in [0, 1], summing to 1), not logits; pass outputs="probabilities" to have them converted')
    return out


def _looks_like_probabilities(p: torch.Tensor) -> bool:
    sums = p.double().sum(dim=1)
    return bool((p >= 0).all() and (p <= 1).all() and ((sums - 1).abs() <= PROBABILITY_TOLERANCE).all())


def _refuse_non_probabilities(name: str, p: torch.Tensor, source: str) -> None:
    sums = p.double().sum(dim=1)
    low, high = float(p.min()), float(p.max())
    if low >= -PROBABILITY_TOLERANCE and high <= 1 + PROBABILITY_TOLERANCE and bool(((sums - 1).abs() <= PROBABILITY_TOLERANCE).all()):
        return
    found = f"values {low:.4g}..{high:.4g}, row sums {float(sums.min()):.4g}..{float(sums.max()):.4g}"
    if source == "predict_proba":
        raise ModelError(f"{name}: predict_proba rows do not sum to 1 ({found}; tolerance {PROBABILITY_TOLERANCE:g}); return normalised class probabilities")
    raise ModelError(f'{name}: outputs="probabilities" was given but its {source} outputs are not probabilities ({found}); return softmax outputs or pass outputs="logits"')


class ModuleAdapter(nn.Module):
    """A user's ``nn.Module`` mapping a batch of the task's inputs to logits (or probabilities).

    Args:
        module: the user's model, kept as ``inner`` (its weights are not copied).
        name: the candidate's name, for refusals.
        num_classes: K.
        outputs: what its forward returns, ``"logits"`` or ``"probabilities"``.
    """

    def __init__(self, module: nn.Module, *, name: str, num_classes: int, outputs: str) -> None:
        super().__init__()
        self.inner = module
        self.name, self.num_classes, self.outputs = name, num_classes, outputs
        # a plain module's outputs have input gradients, unless it declares otherwise (one that re-tokenizes text)
        self.differentiable = bool(getattr(module, "differentiable", True))
        self.capability_reasons = dict(getattr(module, "capability_reasons", {}))
        if not self.has_features:
            self.capability_reasons.setdefault("features", f"{type(module).__qualname__} has no features(x) method giving penultimate features")

    @property
    def has_features(self) -> bool:
        """Whether the module gives penultimate features: a ``features(x)`` method (assay's zoo classifiers have one)."""
        return callable(getattr(self.inner, "features", None))

    def raw(self, x: torch.Tensor) -> Any:
        """What the user's forward returns for ``x``, unchecked (its errors named)."""
        return call_model(self.name, self.inner, x)

    def convert(self, out: Any, rows: int, first: bool = False) -> torch.Tensor:
        return checked_logits(self.name, out, rows=rows, k=self.num_classes, outputs=self.outputs, source="forward", first=first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convert(self.raw(x), len(x))  # (B, K)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        feats = call_model(self.name, self.inner.features, x)
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or len(feats) != len(x):
            raise ModelError(f"{self.name}: features(x) returned {type(feats).__name__} {tuple(getattr(feats, 'shape', ()))}, expected one (B, D) tensor for {len(x)} inputs")
        return feats

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = getattr(self.inner, "logits_and_features", None)
        if callable(both):  # one pass, as assay's own classifiers do it
            out, feats = call_model(self.name, both, x)
            return self.convert(out, len(x)), feats
        return self(x), self.features(x)


class BlackBoxAdapter(nn.Module):
    """An object with ``predict_proba``, or a callable, as a classifier that runs on the CPU.

    Args:
        predict: the model's prediction function (``estimator.predict_proba`` or the callable).
        feed: turns a tensor batch into what ``predict`` takes (a DataFrame of raw rows, a numpy array).
        name: the candidate's name, for refusals.
        num_classes: K.
        outputs: ``"probabilities"`` (converted to log-probabilities) or ``"logits"``.
        source: ``"predict_proba"`` or ``"the callable"``, for messages.
        order: column ``j`` of the task's classes is column ``order[j]`` of the
            model's output (``None``: same order).
    """

    differentiable = False
    has_features = False
    devices = ("cpu",)  # it takes numpy or pandas, so its inputs stay on the CPU
    capability_reasons = {
        "differentiable": "it is a black box (predict_proba or a callable): assay cannot take input gradients through it",
        "features": "it is a black box (predict_proba or a callable) that gives no penultimate features",
    }

    def __init__(self, predict: Callable[[Any], Any], feed: Callable[[torch.Tensor], Any], *, name: str, num_classes: int,
                 outputs: str, source: str, order: np.ndarray | None = None) -> None:
        super().__init__()
        self.predict, self.feed = predict, feed
        self.name, self.num_classes, self.outputs, self.source = name, num_classes, outputs, source
        self.order = None if order is None else torch.as_tensor(order, dtype=torch.long)

    def raw(self, x: torch.Tensor) -> Any:
        return call_model(self.name, self.predict, self.feed(x.detach().cpu()))

    def convert(self, out: Any, rows: int, first: bool = False) -> torch.Tensor:
        logits = checked_logits(self.name, out, rows=rows, k=self.num_classes, outputs=self.outputs, source=self.source, first=first)
        return logits if self.order is None else logits[:, self.order]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convert(self.raw(x), len(x)).to(x.device)  # (B, K)
