"""Checks: each module one question about a candidate, registered by name."""

from __future__ import annotations

import importlib

from .base import CHECKS, Check, CheckContext, Evidence, register_check

# Modules holding registered checks; importing one registers it.
_MODULES = ("performance", "calibration", "efficiency", "robustness", "ood", "fairness", "comparison", "slices", "baseline")


def load_all() -> dict[str, type[Check]]:
    """Import every check module so the registry is complete."""
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return CHECKS


__all__ = ["CHECKS", "Check", "CheckContext", "Evidence", "load_all", "register_check"]
