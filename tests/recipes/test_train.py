"""The training loop: learns, is seeded, and resumes after an interruption."""

import numpy as np
import pytest
import torch

from assay.recipes import RecipeContext, make_recipe
from assay.errors import SpecError


class Interrupt(Exception):
    pass


def _make(task, work, on_epoch_end=None, **options):
    recipe = make_recipe("train", {"arch": "mlp", "epochs": 6, "patience": 20, **options}, "test")
    return recipe.make("mlp", RecipeContext(task=task, work_dir=work, progress=False, on_epoch_end=on_epoch_end))


def _test_accuracy(candidate, task):
    return float((candidate.predict(torch.tensor(task.test.x)).argmax(1).numpy() == task.test.y).mean())


def test_interrupted_after_epoch_two_and_resumed_equals_uninterrupted(digits, tmp_path):
    straight = _make(digits, tmp_path / "straight")

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        _make(digits, tmp_path / "resumed", on_epoch_end=stop_after_two)
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file()
    epochs_seen = []
    resumed = _make(digits, tmp_path / "resumed", on_epoch_end=lambda e, r: epochs_seen.append(e))
    assert epochs_seen == [3, 4, 5, 6]  # lost nothing, repeated nothing
    assert resumed.training["history"] == straight.training["history"]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.id == straight.id
    assert _test_accuracy(resumed, digits) == _test_accuracy(straight, digits)


def test_same_seed_same_model_and_it_learns(digits, tmp_path):
    a = _make(digits, tmp_path / "a", epochs=4)
    b = _make(digits, tmp_path / "b", epochs=4)
    assert a.id == b.id
    assert _test_accuracy(a, digits) > 0.9


def test_early_stopping_keeps_the_best_epoch(digits, tmp_path):
    c = _make(digits, tmp_path / "es", epochs=40, patience=2, lr=0.05)
    t = c.training
    assert t["stopped_early"] and t["epochs_run"] == t["best_epoch"] + 2
    best = min(r["val_loss"] for r in t["history"])
    assert t["best_val_loss"] == pytest.approx(best)


def test_bad_options_are_named():
    with pytest.raises(SpecError, match="unknown key 'epoch'"):
        make_recipe("train", {"epoch": 3}, "study.toml [[recipe]] 'x'")
    with pytest.raises(SpecError, match="'lr' must be positive"):
        make_recipe("train", {"lr": -1.0}, "study.toml [[recipe]] 'x'")
    with pytest.raises(SpecError, match="did you mean 'cnn'"):
        make_recipe("train", {"arch": "cnnn"}, "x")


def test_quantize_makes_a_child_with_its_parent_recorded(cnn, digits, tmp_path):
    ctx = RecipeContext(task=digits, work_dir=tmp_path, progress=False, candidates={"cnn": cnn})
    child = make_recipe("quantize", {"parent": "cnn"}, "x").make("cnn-int8", ctx)
    assert child.provenance.parent == "cnn" and child.provenance.parent_id == cnn.id
    assert child.provenance.transforms == ("dynamic_int8",)
    assert "DynamicQuantizedLinear" in repr(child.model)
    agree = (child.predict(torch.tensor(digits.test.x)).argmax(1) == cnn.predict(torch.tensor(digits.test.x)).argmax(1)).float().mean()
    assert agree > 0.98
    with pytest.raises(SpecError, match="parent 'cnnx' is not a candidate"):
        make_recipe("quantize", {"parent": "cnnx"}, "x").make("q", ctx)


def test_a_diverging_training_stops_with_the_recipe_and_epoch_named(digits, tmp_path):
    from assay.data.task import Split
    from assay.errors import TrainingDiverged
    from assay.models import zoo
    from assay.recipes.options import TrainConfig

    torch.manual_seed(0)
    model = zoo.build("mlp", input_shape=digits.input_shape, num_classes=digits.num_classes, hidden=[16])
    huge = Split(digits.train.x * 1e38, digits.train.y)  # finite inputs whose products overflow to inf
    context = RecipeContext(task=digits, work_dir=tmp_path / "mlp", progress=False)
    with pytest.raises(TrainingDiverged) as caught:
        context.fit(model, huge, digits.val, TrainConfig(epochs=2))
    assert caught.value.recipe == "mlp" and caught.value.epoch == 1
    assert str(caught.value).startswith("mlp: training diverged in epoch 1") and "lower lr" in str(caught.value)


@pytest.mark.parametrize("damage", [b"", b"garbage, not a checkpoint", "truncated"])
def test_a_damaged_checkpoint_restarts_training_with_a_warning(digits, tmp_path, caplog, damage):
    from assay.models import zoo
    from assay.recipes.options import TrainConfig

    checkpoint = tmp_path / "checkpoint.pt"
    context = RecipeContext(task=digits, work_dir=tmp_path, progress=False)

    def train():
        torch.manual_seed(0)
        model = zoo.build("mlp", input_shape=digits.input_shape, num_classes=digits.num_classes, hidden=[16])
        return model, context.fit(model, digits.train, digits.val, TrainConfig(epochs=2))

    clean_model, clean = train()
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2] if damage == "truncated" else damage)
    with caplog.at_level("WARNING", logger="assay"):
        model, summary = train()
    assert "damaged checkpoint" in caplog.text and "restarts from scratch" in caplog.text
    assert summary["epochs_run"] == 2 and len(summary["history"]) == 2
    for a, b in zip(clean_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)  # a fresh start gives the very same model
