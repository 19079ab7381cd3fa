"""The sklearn recipe with any estimator by import path: the same numbers as scikit-learn, saved and reloaded, refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.errors import SpecError
from assay.models.candidate import Candidate
from assay.recipes import RecipeContext, make_recipe


def _flat(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _make(task, options: dict, work, name: str = "est") -> Candidate:
    recipe = make_recipe("sklearn", options, f"study.toml [[recipe]] '{name}'")
    recipe.check_task(task, "study.toml")
    return recipe.make(name, RecipeContext(task=task, work_dir=work, progress=False))


def _probs(candidate: Candidate, x) -> np.ndarray:
    return torch.softmax(candidate.predict(torch.as_tensor(np.asarray(x), dtype=torch.float32)), 1).double().numpy()


def test_hist_gradient_boosting_by_path_is_the_named_gradient_boosting(digits, tmp_path):
    named = _make(digits, {"estimator": "gradient_boosting", "max_iter": 25}, tmp_path / "a")
    by_path = _make(digits, {"estimator": "sklearn.ensemble:HistGradientBoostingClassifier", "params": {"max_iter": 25}}, tmp_path / "b")
    assert by_path.provenance.arch == named.provenance.arch and by_path.provenance.arch["name"] == "trees"
    a, b = named.model.state_dict(), by_path.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert by_path.training["rounds"] == named.training["rounds"]


def test_logistic_regression_by_path_is_a_linear_head_equal_to_scikit_learn(digits, tmp_path):
    from sklearn.linear_model import LogisticRegression

    candidate = _make(digits, {"estimator": "sklearn.linear_model:LogisticRegression", "params": {"C": 0.5, "max_iter": 3000}}, tmp_path)
    reference = LogisticRegression(C=0.5, max_iter=3000, random_state=0).fit(_flat(digits.train.x), digits.train.y)
    assert candidate.provenance.arch["name"] == "mlp" and candidate.capabilities.differentiable
    np.testing.assert_allclose(_probs(candidate, digits.test.x), reference.predict_proba(_flat(digits.test.x)), atol=1e-5)


def test_any_estimator_is_a_black_box_equal_to_its_predict_proba_and_reloads(digits, tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    params = {"n_estimators": 15, "max_depth": 6}
    candidate = _make(digits, {"estimator": "sklearn.ensemble:RandomForestClassifier", "params": params}, tmp_path)
    reference = RandomForestClassifier(**params, random_state=0).fit(_flat(digits.train.x), digits.train.y)
    np.testing.assert_allclose(_probs(candidate, digits.test.x), reference.predict_proba(_flat(digits.test.x)), atol=1e-6)
    caps = candidate.capabilities
    assert not caps.differentiable and not caps.features and caps.devices == ("cpu",) and "black box" in caps.lacks("features")
    assert candidate.provenance.arch["name"] == "skops" and candidate.provenance.arch["class"].endswith("RandomForestClassifier")
    candidate.save(tmp_path / "saved")  # the estimator travels as skops bytes inside the safetensors file
    assert not list((tmp_path / "saved").glob("*.pkl"))
    again = Candidate.load(tmp_path / "saved", "est")
    assert again.id == candidate.id
    x = torch.as_tensor(digits.test.x, dtype=torch.float32)
    assert torch.equal(again.predict(x), candidate.predict(x))


def test_boosting_rounds_are_chosen_on_validation_log_loss_and_refitted(digits, tmp_path):
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import log_loss

    params = {"n_estimators": 12, "max_depth": 2, "learning_rate": 0.5}
    candidate = _make(digits, {"estimator": "sklearn.ensemble:GradientBoostingClassifier", "params": params}, tmp_path)
    full = GradientBoostingClassifier(**params, random_state=0).fit(_flat(digits.train.x), digits.train.y)
    staged = [log_loss(digits.val.y, p, labels=np.arange(10)) for p in full.staged_predict_proba(_flat(digits.val.x))]
    rounds = int(np.argmin(staged)) + 1
    assert candidate.training["rounds"] == rounds and candidate.training["rounds_fitted"] == 12
    kept = GradientBoostingClassifier(**{**params, "n_estimators": rounds}, random_state=0).fit(_flat(digits.train.x), digits.train.y)
    np.testing.assert_allclose(_probs(candidate, digits.test.x), kept.predict_proba(_flat(digits.test.x)), atol=1e-6)


EVAL_SET = '''
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class EvalSetClassifier(ClassifierMixin, BaseEstimator):
    """An XGBoost-style estimator: fit takes an eval_set."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y, eval_set=None, verbose=True):
        self.eval_rows_ = 0 if eval_set is None else len(eval_set[0][0])
        self.inner_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict_proba(self, X):
        return self.inner_.predict_proba(X)
'''


def test_an_estimator_with_an_eval_set_gets_the_validation_split_and_is_saved_with_its_type_trusted(digits, tmp_path, monkeypatch):
    (tmp_path / "evalset_estimator.py").write_text(EVAL_SET)
    monkeypatch.syspath_prepend(str(tmp_path))
    candidate = _make(digits, {"estimator": "evalset_estimator:EvalSetClassifier", "params": {"C": 0.1}}, tmp_path)
    assert candidate.model.estimator.eval_rows_ == len(digits.val)
    assert "eval_set" in candidate.training["early_stopping"]
    assert "evalset_estimator.EvalSetClassifier" in candidate.provenance.arch["trusted"]
    candidate.save(tmp_path / "saved")
    again = Candidate.load(tmp_path / "saved", "est")
    x = torch.as_tensor(digits.test.x[:20], dtype=torch.float32)
    assert torch.equal(again.predict(x), candidate.predict(x))


def test_a_table_task_black_box_reads_the_encoded_rows(tmp_path):
    from sklearn.ensemble import ExtraTreesClassifier

    from assay.data.builtin import load_builtin

    hmda = load_builtin("hmda", seed=0)
    candidate = _make(hmda, {"estimator": "sklearn.ensemble:ExtraTreesClassifier", "params": {"n_estimators": 10}}, tmp_path)
    reference = ExtraTreesClassifier(n_estimators=10, random_state=0).fit(_flat(hmda.train.x), hmda.train.y)
    np.testing.assert_allclose(_probs(candidate, hmda.test.x), reference.predict_proba(_flat(hmda.test.x)), atol=1e-6)


@pytest.mark.parametrize("options, expected", [
    ({"estimator": "sklearn.ensembel:RandomForestClassifier"}, "no module named 'sklearn.ensembel'; check the import path"),
    ({"estimator": "xgboostt:XGBClassifier"}, "no module named 'xgboostt'; install it (pip install xgboostt)"),
    ({"estimator": "sklearn.ensemble:RandomForestClassifer"}, "has no class 'RandomForestClassifer' (did you mean 'RandomForestClassifier'?)"),
    ({"estimator": "sklearn.linear_model:LinearRegression"}, "has no predict_proba"),
    ({"estimator": "sklearn.svm:SVC"}, "probability = true"),
    ({"estimator": "sklearn.ensemble:RandomForestClassifier", "params": {"n_estimators": -3}}, "refused its params: InvalidParameterError: The 'n_estimators' parameter"),
    ({"estimator": "sklearn.ensemble:RandomForestClassifier", "params": {"n_trees": 3}}, "refused its params: TypeError"),
])
def test_bad_estimators_are_refused_in_one_line_before_anything_is_fitted(digits, options, expected):
    recipe = make_recipe("sklearn", options, "study.toml [[recipe]] 'est'")
    with pytest.raises(SpecError) as error:
        recipe.check_task(digits, "study.toml [[recipe]] 'est'")
    message = str(error.value)
    assert expected in message and message.startswith("study.toml [[recipe]] 'est': ") and "\n" not in message


@pytest.mark.parametrize("options, expected", [
    ({"estimator": "sklearn.ensemble:RandomForestClassifier", "max_iter": 50}, "'max_iter' applies to the named estimators; for 'sklearn.ensemble:RandomForestClassifier' write params = { max_iter = 50 }"),
    ({"estimator": "gradient_boosting", "params": {"max_iter": 50}}, "'params' applies to an estimator given by import path"),
    ({"estimator": "random_forest"}, "or a class by import path"),
])
def test_options_that_do_not_fit_the_estimator_are_refused_when_the_study_is_read(options, expected):
    with pytest.raises(SpecError, match="^study.toml") as error:
        make_recipe("sklearn", options, "study.toml [[recipe]] 'est'")
    assert expected in str(error.value)


def test_text_is_refused_before_anything_is_fitted():
    from assay.data.builtin import load_builtin

    recipe = make_recipe("sklearn", {"estimator": "sklearn.ensemble:RandomForestClassifier"}, "x")
    with pytest.raises(SpecError, match="reads numeric inputs"):
        recipe.check_task(load_builtin("tweets", seed=0), "study.toml [[recipe]] 'rf'")
