"""Shared fixtures: real small data (scikit-learn's digits) and real trained models."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from assay.checks.base import CheckContext
from assay.checks.predictions import PredictionCache
from assay.data.builtin import load_builtin
from assay.recipes import RecipeContext, make_recipe

warnings.filterwarnings("ignore", category=DeprecationWarning)
torch.set_num_threads(2)  # CI's two quiet cores: MiniLM runs 1.7x faster than on one (on a busy machine two threads can be 8x slower)


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    """Each module starts on two threads again: an in-process ``assay`` command sets its own ``--threads`` (default 1)."""
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    return load_builtin("digits", seed=0)


def train(task, arch: str, work: Path, **options):
    recipe = make_recipe("train", {"arch": arch, **options}, "test")
    return recipe.make(arch, RecipeContext(task=task, work_dir=work, progress=False))


@pytest.fixture(scope="session")
def mlp(digits, tmp_path_factory):
    """A real MLP trained on digits (a few seconds)."""
    return train(digits, "mlp", tmp_path_factory.mktemp("mlp"), epochs=15)


@pytest.fixture(scope="session")
def cnn(digits, tmp_path_factory):
    """A real small CNN trained on digits."""
    return train(digits, "cnn", tmp_path_factory.mktemp("cnn"), epochs=12, arch_options={"channels": [16, 32]})


@pytest.fixture()
def context(digits, tmp_path):
    return CheckContext(task=digits, predictions=PredictionCache(tmp_path / "predictions"), seed=0, n_boot=300)
