"""The ``adversarial`` recipe: PGD adversarial training and TRADES through the one loop, on digits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from assay.checks.base import make_check
from assay.errors import SpecError
from assay.models import attacks
from assay.recipes import RecipeContext, make_recipe
from assay.stats import paired_difference_interval

EPS = 0.1
CNN = {"arch": "cnn", "arch_options": {"channels": [16, 32]}}


def _robust(model, task, eps: float = EPS) -> np.ndarray:
    """Per test example: right on its APGD example at ``eps`` (and on itself)."""
    x, y = torch.as_tensor(task.test.x), torch.as_tensor(task.test.y)
    adv = attacks.apgd(model, x, y, eps, attacks.constraint_for(task, model), steps=20, seed=1)
    with torch.no_grad():
        return ((model(adv).argmax(1) == y) & (model(x).argmax(1) == y)).numpy()


@pytest.fixture(scope="module")
def robust_cnn(digits, tmp_path_factory):
    recipe = make_recipe("adversarial", {**CNN, "epochs": 12, "epsilon": EPS}, "test")
    return recipe.make("cnn-pgd", RecipeContext(task=digits, work_dir=tmp_path_factory.mktemp("pgd"), progress=False))


def test_pgd_training_raises_robust_accuracy_with_an_interval_above_zero(robust_cnn, cnn, digits, context):
    plain, robust = _robust(cnn.model.eval(), digits), _robust(robust_cnn.model.eval(), digits)
    gain, low, high = paired_difference_interval(robust, plain)
    assert low > 0.2, f"robust accuracy {robust.mean():.3f} vs {plain.mean():.3f}: gain {gain:.3f} [{low:.3f}, {high:.3f}]"
    # the adversarial check reads the same: its headline figure is higher for the adversarially trained model
    check = make_check("adversarial", {"epsilons": [EPS], "n_examples": 128, "check_examples": 16})
    figures = {c.name: next(e for e in check.run(c, context) if e.metric == "adversarial_accuracy") for c in (cnn, robust_cnn)}
    assert figures["cnn-pgd"].low > figures[cnn.name].high
    assert robust_cnn.provenance.recipe == "adversarial" and robust_cnn.provenance.config["epsilon"] == EPS


def test_early_stopping_follows_the_robust_validation_loss(robust_cnn, digits):
    history = robust_cnn.training["history"]
    best = min(history, key=lambda row: row["val_loss"])
    assert robust_cnn.training["best_epoch"] == best["epoch"]
    model = robust_cnn.model.eval()  # the kept weights' validation figures are on PGD examples, below their clean accuracy
    with torch.no_grad():
        clean = (model(torch.as_tensor(digits.val.x)).argmax(1) == torch.as_tensor(digits.val.y)).float().mean().item()
    assert best["val_accuracy"] < clean


class Interrupt(Exception):
    pass


def test_trades_interrupted_and_resumed_equals_uninterrupted(digits, tmp_path):
    options = {**CNN, "epochs": 3, "patience": 5, "epsilon": EPS, "method": "trades", "steps": 3}

    def make(work, on_epoch_end=None):
        recipe = make_recipe("adversarial", options, "test")
        return recipe.make("t", RecipeContext(task=digits, work_dir=work, progress=False, on_epoch_end=on_epoch_end))

    straight = make(tmp_path / "straight")

    def stop_after_one(epoch, row):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        make(tmp_path / "resumed", stop_after_one)
    resumed = make(tmp_path / "resumed")  # the attack's random starts are drawn from a checkpointed generator
    assert resumed.training["history"] == straight.training["history"]
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert all(np.isfinite(row["loss"]) for row in straight.training["history"])


def test_bad_options_and_text_tasks_are_refused():
    with pytest.raises(SpecError, match="method = 'madry'; use one of pgd, trades"):
        make_recipe("adversarial", {"arch": "cnn", "method": "madry"}, "[[recipe]] 'x'")
    with pytest.raises(SpecError, match="epsilon"):
        make_recipe("adversarial", {"arch": "cnn", "epsilon": 0.0}, "[[recipe]] 'x'")
    with pytest.raises(SpecError, match="text model is attacked in its embedding space"):
        make_recipe("adversarial", {"arch": "gru"}, "[[recipe]] 'x'").check_task(SimpleNamespace(modality="text"), "[[recipe]] 'x'")
