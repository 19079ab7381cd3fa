"""The sklearn recipe: scikit-learn's logistic regression as an ordinary torch candidate."""

import numpy as np
import pytest
import torch

from assay.recipes import RecipeContext, make_recipe


def test_logistic_regression_candidate_equals_scikit_learn(digits, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    recipe = make_recipe("sklearn", {"estimator": "logistic_regression"}, "test")
    candidate = recipe.make("logreg", RecipeContext(task=digits, work_dir=tmp_path, progress=False))
    c = candidate.training["C"]
    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # noqa: E731
    # C is the grid value with the lowest validation log-loss, recomputed here.
    losses = {float(k): v for k, v in candidate.training["val_log_loss_by_C"].items()}
    assert c == min(losses, key=losses.get)
    reference = LogisticRegression(C=c, max_iter=2000, random_state=0).fit(flat(digits.train.x), digits.train.y)
    assert losses[c] == pytest.approx(log_loss(digits.val.y, reference.predict_proba(flat(digits.val.x))), rel=1e-9)
    with torch.no_grad():
        probs = torch.softmax(candidate.model(torch.as_tensor(digits.test.x, dtype=torch.float32)), 1).numpy()
    np.testing.assert_allclose(probs, reference.predict_proba(flat(digits.test.x)), atol=1e-5)
    assert (probs.argmax(1) == digits.test.y).mean() > 0.9


def test_binary_logistic_regression_head_is_the_sigmoid(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from assay.data.builtin import load_builtin

    hmda = load_builtin("hmda", seed=0)
    candidate = make_recipe("sklearn", {"C": 1.0}, "test").make("lr", RecipeContext(task=hmda, work_dir=tmp_path, progress=False))
    reference = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(np.asarray(hmda.train.x, np.float64), hmda.train.y)
    with torch.no_grad():
        probs = torch.softmax(candidate.model(torch.as_tensor(hmda.test.x, dtype=torch.float32)), 1).numpy()
    np.testing.assert_allclose(probs, reference.predict_proba(np.asarray(hmda.test.x, np.float64)), atol=1e-5)
    candidate.save(tmp_path / "saved")
    from assay.models.candidate import Candidate

    again = Candidate.load(tmp_path / "saved", "lr")
    with torch.no_grad():
        assert torch.equal(again.model(torch.as_tensor(hmda.test.x[:5], dtype=torch.float32)), candidate.model(torch.as_tensor(hmda.test.x[:5], dtype=torch.float32)))


def test_sklearn_recipe_refuses_bad_options():
    from assay.errors import SpecError

    with pytest.raises(SpecError, match="unknown estimator 'logistic'"):
        make_recipe("sklearn", {"estimator": "logistic"}, "study.toml [[recipe]] 'lr'")
    with pytest.raises(SpecError, match="'C' must be a positive finite number"):
        make_recipe("sklearn", {"C": -1.0}, "study.toml [[recipe]] 'lr'")


@pytest.mark.parametrize("task_name", ["digits", "hmda"])
def test_gradient_boosting_candidate_equals_scikit_learn(task_name, tmp_path):
    """Ten classes (one tree per class and round) and two (one tree per round, the log-odds); saved and loaded unchanged."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss

    from assay.data.builtin import load_builtin
    from assay.models.candidate import Candidate

    task = load_builtin(task_name, seed=0)
    recipe = make_recipe("sklearn", {"estimator": "gradient_boosting", "max_iter": 60}, "test")
    candidate = recipe.make("gbt", RecipeContext(task=task, work_dir=tmp_path, progress=False))
    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # noqa: E731
    reference = HistGradientBoostingClassifier(max_iter=60, early_stopping=False, random_state=0).fit(flat(task.train.x), task.train.y)
    # The rounds kept are those with the lowest validation log-loss, recomputed here.
    staged = [log_loss(task.val.y, p, labels=np.arange(task.num_classes)) for p in reference.staged_predict_proba(flat(task.val.x))]
    assert candidate.training["rounds"] == int(np.argmin(staged)) + 1
    truncated = HistGradientBoostingClassifier(max_iter=candidate.training["rounds"], early_stopping=False, random_state=0)
    truncated.fit(flat(task.train.x), task.train.y)
    x = torch.as_tensor(task.test.x, dtype=torch.float32)
    with torch.no_grad():
        probs = torch.softmax(candidate.model(x), 1).numpy()
    np.testing.assert_allclose(probs, truncated.predict_proba(flat(task.test.x)), atol=1e-5)
    assert (probs.argmax(1) == truncated.predict(flat(task.test.x))).all()
    candidate.save(tmp_path / "saved")
    again = Candidate.load(tmp_path / "saved", "gbt")
    with torch.no_grad():
        assert torch.equal(again.model(x), candidate.model(x))
        features = candidate.model.features(x)
        assert features.shape == (len(x), candidate.provenance.arch["n_trees"])  # one leaf value per tree


def test_trees_route_missing_values_and_thresholds_as_scikit_learn(tmp_path):
    """NaN follows each node's learned side; a float32 input equal to a rounded threshold takes the float64 branch."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from assay.models.trees import below_float32
    from assay.recipes.sklearn import tree_candidate

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    x[rng.random(x.shape) < 0.2] = np.nan  # missing values seen in training: each split learns where they go
    model = HistGradientBoostingClassifier(max_iter=20, early_stopping=False, random_state=0).fit(x.astype(np.float64), y)
    net, _ = tree_candidate(model, 20, (3,), 2)
    probe = np.vstack([x[:50], np.full((1, 3), np.nan, np.float32)])
    thresholds = np.concatenate([t.nodes["num_threshold"][~t.nodes["is_leaf"].astype(bool)] for it in model._predictors for t in it])
    exact = below_float32(thresholds)  # inputs sitting exactly on (the float32 just below) a threshold
    probe = np.vstack([probe, np.tile(exact[:30, None], (1, 3)), np.tile(np.nextafter(exact[:30], np.float32(np.inf))[:, None], (1, 3))]).astype(np.float32)
    with torch.no_grad():
        probs = torch.softmax(net(torch.from_numpy(probe)), 1).numpy()
    np.testing.assert_allclose(probs, model.predict_proba(probe.astype(np.float64)), atol=1e-6)
    low = below_float32(np.array([0.1]))[0]  # 0.1 is not a float32: the one just below it
    assert float(low) <= 0.1 < float(np.nextafter(low, np.float32(1)))


def test_gradient_boosting_refuses_logistic_options():
    from assay.errors import SpecError

    with pytest.raises(SpecError, match="'C' applies to estimator = \"logistic_regression\" only"):
        make_recipe("sklearn", {"estimator": "gradient_boosting", "C": 1.0}, "study.toml [[recipe]] 'gbt'")
    with pytest.raises(SpecError, match="'learning_rate' must be in"):
        make_recipe("sklearn", {"estimator": "gradient_boosting", "learning_rate": 0.0}, "study.toml [[recipe]] 'gbt'")
