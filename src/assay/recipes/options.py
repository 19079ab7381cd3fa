"""The training parameters, declared once: ``TrainConfig`` and the recipes that accept them.

``TrainConfig`` is what the one training loop reads. Its fields are also the
options a training recipe accepts in the study file (``epochs``, ``lr`` ...):
a recipe names which of them it takes and its own defaults with
``@training_options(epochs=60, lr=3e-3, ...)``, and the type comes from here
while the range comes from the one table in ``_options.LIMITS``, so a
parameter means, and is checked, the same in every recipe. A recipe's own
options are ordinary annotated class attributes; the decorator turns the
class into a keyword-only dataclass, so its constructor only stores (checks
that need more than a type and a range go in ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._options import LIMITS, check_limit
from ..models import zoo
from .base import Recipe

R = TypeVar("R", bound=type)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule settings of one run of the training loop (AdamW, warm-up then cosine decay)."""

    epochs: int = 60  # upper bound; early stopping usually ends sooner
    batch_size: int = 64
    lr: float = 3e-3  # peak AdamW learning rate, reached after warm-up
    weight_decay: float = 0.05
    warmup_epochs: int = 1  # linear warm-up before the cosine decay
    patience: int = 10  # epochs without a better validation loss before stopping
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # the same ranges the study file is checked against
            check_limit(f.name, getattr(self, f.name), LIMITS[f.name], "TrainConfig")


TRAINING_PARAMETERS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}  # name -> annotation


class TrainingRecipe(Recipe):
    """A recipe that trains: its shared training options become a ``TrainConfig``."""

    def train_config(self, **stage: Any) -> TrainConfig:
        """The recipe's training options as a ``TrainConfig``; ``stage`` overrides them (an inner stage's own epochs or lr).

        Options the recipe leaves unset (``None``) take ``TrainConfig``'s defaults.
        """
        own = {name: getattr(self, name) for name in TRAINING_PARAMETERS if getattr(self, name, None) is not None}
        return TrainConfig(**{**own, **stage})


def training_options(**defaults: Any) -> Callable[[R], R]:
    """Class decorator: the recipe accepts these shared training parameters, with these defaults.

    A default of ``None`` makes the option optional (the recipe decides per
    strategy). The class becomes a keyword-only dataclass over its annotated
    options; ``Recipe.params`` and ``repr`` read its constructor as before.

    Example::

        @register_recipe
        @training_options(epochs=60, batch_size=64, lr=3e-3)
        class Distill(TrainingRecipe):
            kind = "distill"
            parent: str
            temperature: float = 4.0
    """
    unknown = set(defaults) - set(TRAINING_PARAMETERS)
    if unknown:
        raise TypeError(f"training_options: unknown training parameter(s) {sorted(unknown)}; known: {', '.join(TRAINING_PARAMETERS)}")

    def wrap(cls: R) -> R:
        annotations = dict(cls.__dict__.get("__annotations__", {}))
        for name, default in defaults.items():
            kind = TRAINING_PARAMETERS[name]
            annotations[name] = kind if default is not None else f"{kind} | None"
            setattr(cls, name, default)
        cls.__annotations__ = annotations
        cls.training_defaults = dict(defaults)  # a recipe training the same way declares them again from here
        return dataclass(kw_only=True, eq=False, repr=False)(cls)

    return wrap


def checked_arch(arch: str, arch_options: dict[str, Any] | None) -> dict[str, Any]:
    """``arch_options`` as a dict, after checking the architecture exists and takes these options.

    Raises:
        ValueError: naming the unknown architecture or option (the study file's loader adds where).
    """
    if arch not in zoo.ARCHITECTURES:
        raise ValueError(zoo.unknown_arch(arch))
    zoo.check_arch(arch, dict(arch_options or {}), "arch_options")
    return dict(arch_options or {})
