"""LightGBM and XGBoost by import path: early stopping on the validation split, as each library does it, and the same probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.models.candidate import Candidate
from assay.recipes import RecipeContext, make_recipe
from assay.recipes.boosters import STOPPING_ROUNDS

CLASSES = {"lightgbm": "lightgbm:LGBMClassifier", "xgboost": "xgboost:XGBClassifier"}
CAP = 300  # far more rounds than the table needs at this learning rate: early stopping must end well before it


@pytest.fixture(scope="module")
def hmda():
    from assay.data.builtin import load_builtin

    return load_builtin("hmda", seed=0)


def _library(name: str):
    return pytest.importorskip(name, reason=f"{name} is not installed (it is in the dev extra: pip install -e '.[dev]')")


def _flat(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _make(task, estimator: str, params: dict, work) -> Candidate:
    recipe = make_recipe("sklearn", {"estimator": estimator, "params": params}, "study.toml [[recipe]] 'gbm'")
    recipe.check_task(task, "study.toml [[recipe]] 'gbm'")
    return recipe.make("gbm", RecipeContext(task=task, work_dir=work, progress=False))


def _probs(candidate: Candidate, x) -> np.ndarray:
    return torch.softmax(candidate.predict(torch.as_tensor(np.asarray(x), dtype=torch.float32)), 1).double().numpy()


def _reference(name: str, task, params: dict):
    """The library's own early stopping on the same encoded rows, called directly."""
    lib = _library(name)
    x, y, xv, yv = _flat(task.train.x), np.asarray(task.train.y), _flat(task.val.x), np.asarray(task.val.y)
    if name == "lightgbm":
        model = lib.LGBMClassifier(**params, random_state=0, verbose=-1)
        return model.fit(x, y, eval_X=xv, eval_y=yv, callbacks=[lib.early_stopping(STOPPING_ROUNDS, verbose=False)]), model.best_iteration_
    model = lib.XGBClassifier(**params, random_state=0, early_stopping_rounds=STOPPING_ROUNDS)
    return model.fit(x, y, eval_set=[(xv, yv)], verbose=False), model.best_iteration + 1


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_booster_stops_on_the_validation_split_before_the_cap_and_predicts_like_the_library(name, hmda, tmp_path):
    _library(name)
    params = {"n_estimators": CAP, "learning_rate": 0.3, "n_jobs": 1}
    candidate = _make(hmda, CLASSES[name], params, tmp_path)
    training = candidate.training
    curve = training["val_loss_by_round"]
    # It stopped: the best round, then STOPPING_ROUNDS without a better validation loss, far before the cap.
    assert training["rounds"] + STOPPING_ROUNDS == training["rounds_fitted"] == len(curve) < CAP // 4
    assert training["max_rounds"] == CAP and training["stopping_metric"] in {"binary_logloss", "logloss"}
    assert curve[training["rounds"] - 1] == min(curve)
    # The candidate is the estimator's own predict_proba on the same encoded rows ...
    np.testing.assert_allclose(_probs(candidate, hmda.test.x), candidate.model.estimator.predict_proba(_flat(hmda.test.x)), atol=1e-6)
    # ... and that estimator is what the library's own early stopping on the validation split makes.
    reference, rounds = _reference(name, hmda, params)
    assert training["rounds"] == rounds
    np.testing.assert_allclose(_probs(candidate, hmda.test.x), reference.predict_proba(_flat(hmda.test.x)), atol=1e-6)
    # The rounds chosen are in the saved description, and the reloaded estimator predicts the same.
    candidate.save(tmp_path / "saved")
    again = Candidate.load(tmp_path / "saved", "gbm")
    assert again.training["rounds"] == training["rounds"] and again.id == candidate.id
    x = torch.as_tensor(hmda.test.x, dtype=torch.float32)
    assert torch.equal(again.predict(x), candidate.predict(x))


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_early_stopping_rounds_in_params_sets_the_patience_and_zero_turns_it_off(name, hmda, tmp_path):
    _library(name)
    patient = _make(hmda, CLASSES[name], {"n_estimators": CAP, "learning_rate": 0.3, "n_jobs": 1, "early_stopping_rounds": 3}, tmp_path / "a")
    assert patient.training["rounds_fitted"] == patient.training["rounds"] + 3 and "after 3 rounds" in patient.training["early_stopping"]
    off = _make(hmda, CLASSES[name], {"n_estimators": 20, "learning_rate": 0.3, "n_jobs": 1, "early_stopping_rounds": 0}, tmp_path / "b")
    assert off.training["rounds"] == off.training["rounds_fitted"] == 20 and off.training["early_stopping"].startswith("off")


def test_xgboost_refuses_a_training_split_missing_a_class_with_the_class_named(tmp_path):
    """XGBoost fits classes 0..m-1 only: digits without any training '3' is refused in one line naming '3', not with XGBoost's
    'Invalid classes inferred' (and LightGBM, which maps its own classes, fits the same task)."""
    from dataclasses import replace

    from assay.data.builtin import load_builtin
    from assay.errors import DataError

    _library("xgboost")
    task = load_builtin("digits", seed=0)
    task = replace(task, train=task.train.subset(np.flatnonzero(task.train.y != 3)))
    with pytest.raises(DataError, match=r"class '3' has none in the training split; keep it in training, or use a LightGBM"):
        _make(task, CLASSES["xgboost"], {"n_estimators": 5, "n_jobs": 1}, tmp_path)
