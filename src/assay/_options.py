"""Build a registered class from study-file options, naming any bad key."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import SpecError, did_you_mean

T = TypeVar("T")


def option_names(cls: type) -> list[str]:
    """The keyword parameters of ``cls.__init__``."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def construct(cls: type[T], options: Mapping[str, Any], where: str) -> T:
    """``cls(**options)``, turning unknown keys and bad values into SpecError.

    Args:
        where: the place in the study file, e.g. ``study.toml [[recipe]] 'cnn'``.
    """
    allowed = option_names(cls)
    for key in options:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or (f"; allowed: {', '.join(allowed)}" if allowed else "; it takes no options")
            raise SpecError(f"{where}: unknown key '{key}'{hint}")
    try:
        return cls(**options)
    except (TypeError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpecError(f"{where}: {message}") from None
