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
