"""The errors a user can cause, each printed as one line that says the fix.

Every message names the input, what was found, and what to do::

    data/train/cat/0042.png: cannot read image (truncated file); remove or replace it

The CLI prints ``str(error)`` and exits with status 2; no traceback unless
``--debug``. Each subclass also inherits the matching built-in so that code
catching ``ValueError`` or ``FileNotFoundError`` keeps working.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from types import ModuleType


class AssayError(Exception):
    """Root of every error assay raises on purpose."""


class DataError(AssayError, ValueError):
    """A data file or folder is missing, unreadable or inconsistent."""


class SpecError(AssayError, ValueError):
    """The study file (or a CLI option) asks for something invalid."""


class StoreError(AssayError, LookupError):
    """A run, candidate or record asked for is not in the store."""


class ModelError(AssayError, ValueError):
    """A saved model cannot be loaded or does not fit the task."""


class TrainingDiverged(ModelError):
    """A training's loss became non-finite: that candidate stops, the study goes on.

    Attributes:
        recipe: the candidate's name; epoch: the epoch it diverged in (1-based).
    """

    def __init__(self, message: str, *, recipe: str = "", epoch: int = 0) -> None:
        super().__init__(message)
        self.recipe, self.epoch = recipe, epoch


class MissingDependency(AssayError, ImportError):
    """An optional library is needed for the feature asked for."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional library, or say which extra installs it.

    Args:
        module: the importable name, e.g. ``"captum.attr"``.
        extra: the assay extra that provides it, e.g. ``"explain"``.

    Raises:
        MissingDependency: when the import fails.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependency(
            f"{module}: not installed ({error}); install it with pip install 'assay[{extra}]'"
        ) from None
