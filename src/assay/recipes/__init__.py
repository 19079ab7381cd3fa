"""Recipes: each module one way to make a candidate, registered by kind."""

from __future__ import annotations

import importlib
import pkgutil

from .base import RECIPES, Recipe, RecipeContext, make_recipe, register_recipe

_MODULES = ("train", "quantize", "transfer", "selfsup", "fewshot", "prune", "distill", "export", "load", "sklearn")


def load_all() -> dict[str, type[Recipe]]:
    """Import every recipe module so the registry is complete (a module not in ``_MODULES``, a new recipe, after them)."""
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for module in (*_MODULES, *(m for m in found if m not in _MODULES)):
        importlib.import_module(f"{__name__}.{module}")
    return RECIPES


__all__ = ["RECIPES", "Recipe", "RecipeContext", "load_all", "make_recipe", "register_recipe"]
