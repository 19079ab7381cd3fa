"""Checks: each module one question about a candidate, registered by name."""

from __future__ import annotations

import importlib
import pkgutil

from .base import CHECKS, Check, CheckContext, Evidence, register_check

# Importing a module of this package registers the checks it defines. This order is the registry's: the
# default [checks] run list, the report's findings columns and the summary's metric columns follow it;
# a module not named here (a new check) comes after these, by module name.
_MODULES = ("performance", "calibration", "robustness", "ood", "fairness", "slices", "comparison", "efficiency", "baseline", "explain")


def load_all() -> dict[str, type[Check]]:
    """Import every check module so the registry is complete, in ``_MODULES`` order."""
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for module in (*_MODULES, *(m for m in found if m not in _MODULES)):
        importlib.import_module(f"{__name__}.{module}")
    # Whatever imported a check module first (comparison imports calibration), the order is _MODULES';
    # checks registered from elsewhere follow, in registration order (the sort is stable).
    rank = {module: i for i, module in enumerate(_MODULES)}
    ordered = sorted(CHECKS.values(), key=lambda cls: rank.get(cls.__module__.rpartition(".")[2], len(rank)))
    if list(CHECKS.values()) != ordered:
        CHECKS.clear()
        CHECKS.update((cls.name, cls) for cls in ordered)
    return CHECKS


__all__ = ["CHECKS", "Check", "CheckContext", "Evidence", "load_all", "register_check"]
