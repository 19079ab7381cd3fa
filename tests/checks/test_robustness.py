"""robustness: mCE and relative mCE against a hand-computed case; the check end to end."""

import numpy as np
import pytest

from assay.checks.robustness import Robustness, corruption_errors, mean_corruption_error, relative_mean_corruption_error


def test_mce_by_hand():
    # Two corruptions, three severities. Model errors and the reference's:
    model = {"noise": np.array([0.1, 0.2, 0.3]), "blur": np.array([0.2, 0.2, 0.2])}
    ref = {"noise": np.array([0.2, 0.3, 0.5]), "blur": np.array([0.1, 0.2, 0.3])}
    # CE_noise = 0.6 / 1.0 = 0.6; CE_blur = 0.6 / 0.6 = 1.0; mCE = 0.8
    assert corruption_errors(model, ref) == pytest.approx({"noise": 0.6, "blur": 1.0})
    assert mean_corruption_error(model, ref) == pytest.approx(0.8)
    # Relative: clean errors 0.05 and 0.1. noise: (0.6-0.15)/(1.0-0.3) = 0.642857; blur: (0.6-0.15)/(0.6-0.3) = 1.5
    assert relative_mean_corruption_error(model, 0.05, ref, 0.1) == pytest.approx((0.45 / 0.7 + 1.5) / 2)


def test_check_reports_per_corruption_accuracy_relative_to_the_reference(mlp, cnn, context):
    context.candidates = {"mlp": mlp, "cnn": cnn}
    own = {e.metric: e for e in Robustness().run(mlp, context)}
    assert own["mce"].value == pytest.approx(1.0) and own["relative_mce"].value == pytest.approx(1.0)  # mlp is the reference
    other = {e.metric: e for e in Robustness(reference="mlp").run(cnn, context)}
    accuracy = other["corruption_accuracy"].details["accuracy"]
    assert len(accuracy) == 9 and all(len(v) == 5 for v in accuracy.values())
    errors = {k: 1 - np.array(v) for k, v in accuracy.items()}
    ref_errors = {k: 1 - np.array(v) for k, v in own["corruption_accuracy"].details["accuracy"].items()}
    assert other["mce"].value == pytest.approx(mean_corruption_error(errors, ref_errors), abs=1e-5)
    assert other["corruption_accuracy"].value == pytest.approx(np.mean([np.mean(v) for v in accuracy.values()]), abs=1e-6)  # details are rounded to 6 places
    for e in other.values():
        assert e.low <= e.value <= e.high


def test_ood_on_held_out_digits(tmp_path):
    """Classes 8 and 9 held out: every score separates them better than chance."""
    from pathlib import Path

    from assay.checks.base import CheckContext
    from assay.checks.ood import OOD, SCORES
    from assay.checks.predictions import PredictionCache
    from assay.recipes import RecipeContext, make_recipe
    from assay.study import load_task

    task = load_task({"builtin": "digits", "holdout_classes": ["8", "9"]}, base_dir=Path("."), seed=0)
    assert task.num_classes == 8 and len(task.ood) > 40 and -1 not in task.train.y
    model = make_recipe("train", {"arch": "mlp", "epochs": 15}, "x").make("mlp", RecipeContext(task=task, work_dir=tmp_path, progress=False))
    ctx = CheckContext(task=task, predictions=PredictionCache(None), n_boot=200)
    evidence = {e.metric: e for e in OOD().run(model, ctx)}
    table = evidence["near_ood_auroc"].details["table"]["holdout"]
    assert set(table) == set(SCORES)
    assert all(table[s]["auroc"] > 0.6 for s in SCORES), table
    assert evidence["far_ood_auroc"].details["sets"] == ["noise", "inverted"]


def test_a_user_named_ood_set(tmp_path, mlp, digits):
    """[task] ood = { path = ... }: every example of that data becomes the 'user' OOD set."""
    from pathlib import Path

    from assay.checks.base import CheckContext
    from assay.checks.ood import OOD
    from assay.checks.predictions import PredictionCache
    from assay.errors import DataError
    from assay.study import load_task

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "letters.npz", x=rng.random((60, 1, 8, 8)).round(1).astype(np.float32), y=np.arange(60) % 2)
    task = load_task({"builtin": "digits", "ood": {"path": "letters.npz"}}, base_dir=tmp_path, seed=0)
    assert len(task.ood_user) == 60 and task.digest() != digits.digest()
    evidence = {e.metric: e for e in OOD().run(mlp, CheckContext(task=task, predictions=PredictionCache(None), n_boot=100))}
    assert evidence["user_ood_auroc"].details["sets"] == ["user"]
    np.savez(tmp_path / "table.npz", x=rng.random((60, 5)), y=np.arange(60) % 2)
    with pytest.raises(DataError, match="same kind and shape"):
        load_task({"builtin": "digits", "ood": {"path": "table.npz"}}, base_dir=Path(tmp_path), seed=0)
