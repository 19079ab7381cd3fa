"""``assay.judge`` and ``Study(candidates=...)``: models given in code, judged beside assay's own, in one run.

Real models on real data: a small torch network trained here, a scikit-learn
pipeline and a plain callable, on scikit-learn's digits given as arrays. The
figures are checked against scikit-learn's own; the models come back as they
were given; a refused model leaves no run behind.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

import assay
from assay.errors import ModelError, SpecError
from assay.evidence import SKIPPED
from assay.store import Store
from assay.study import Study

CHECKS = ["performance", "calibration", "comparison", "efficiency"]


@pytest.fixture(scope="module")
def arrays():
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def task(arrays):
    x_train, x_test, y_train, y_test = arrays
    return assay.Task.from_arrays(x_train, y_train, x_test, y_test, modality="tabular", name="digits-arrays")


def _net(x: np.ndarray, y: np.ndarray, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(x[0].size, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))
    optimiser = torch.optim.Adam(net.parameters(), 1e-2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        optimiser.step()
    return net  # left in training mode on purpose: judge must judge it in eval mode and give it back as it was


@pytest.fixture(scope="module")
def models(arrays):
    x_train, _, y_train, _ = arrays
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x_train, y_train)
    return {"net": _net(x_train, y_train), "pipeline": pipeline, "fn": lambda batch: pipeline.predict_proba(np.asarray(batch))}


@pytest.fixture(scope="module")
def judged(task, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("judge")
    recipes = [{"name": "logreg", "kind": "sklearn", "estimator": "logistic_regression"}]
    return assay.judge(models, task, checks=CHECKS, recipes=recipes, out=out, n_boot=200, progress=False), out


def test_every_model_is_judged_beside_the_recipes(judged, models):
    result, out = judged
    assert {c["name"] for c in result.candidates} == {"net", "pipeline", "fn", "logreg"}
    assert result.decision.chosen in {"net", "pipeline", "fn", "logreg"}
    assert result.report.is_file() and result.model_card.is_file()
    assert [r["id"] for r in Store(out).list_runs()] == [result.run_id]  # a row in the run index
    html = result.report.read_text()
    for name in ("net", "pipeline", "fn", "logreg", "torch.nn.modules.container.Sequential"):
        assert name in html
    assert "training mode" in html  # the dropout network came in training mode: said in the report


def test_figures_equal_scikit_learns(judged, models, arrays):
    result, _ = judged
    _, x_test, _, y_test = arrays
    expected = accuracy_score(y_test, models["pipeline"].predict(x_test))
    for name in ("pipeline", "fn"):  # the same estimator as an object and behind a callable
        (e,) = [e for e in result.evidence if e.candidate == name and e.metric == "accuracy" and e.split == "test"]
        assert e.value == pytest.approx(expected, abs=1e-12)
        assert e.low <= e.value <= e.high


def test_the_module_comes_back_as_it_was_given(judged, models):
    net = models["net"]
    assert net.training, "judged in eval mode, given back in training mode"
    assert next(net.parameters()).device.type == "cpu"


def test_a_black_box_skips_what_it_cannot_give_with_the_reason(judged):
    result, _ = judged
    skips = [e for e in result.evidence if e.candidate == "pipeline" and e.check == "efficiency" and e.metric == SKIPPED and e.split == "test"]
    assert len(skips) == 1 and "black box" in skips[0].details["reason"]
    assert {"parameters", "flops_per_sample"} <= set(skips[0].details["metrics"])  # size_mb: its skops file, when skops is installed
    assert any(e.candidate == "pipeline" and e.metric == "latency_p50_ms" for e in result.evidence)  # timed as it is


def test_table_and_notebook_view(judged):
    result, _ = judged
    table = result.table()
    assert {"candidate", "metric", "value", "low", "high"} <= set(table.columns)
    accuracy = table[(table.metric == "accuracy")]
    assert set(accuracy.candidate) == {"net", "pipeline", "fn", "logreg"}
    assert ((accuracy.low <= accuracy.value) & (accuracy.value <= accuracy.high)).all()
    html = result._repr_html_()
    assert html.startswith("<iframe") and "Ship" in html and "Summary" in html


def test_the_same_models_are_the_same_study_and_another_model_is_another(judged, task, models, arrays):
    """The study's identity (what an unfinished run resumes by) covers the models and the data given in code."""
    result, out = judged
    store = Store(out)
    recipes = [{"name": "logreg", "kind": "sklearn", "estimator": "logistic_regression"}]
    again = assay.judge(models, task, checks=CHECKS, recipes=recipes, out=out, n_boot=200, progress=False)
    assert store.run_meta(again.run_id)["config_hash"] == store.run_meta(result.run_id)["config_hash"]
    assert [e.value for e in again.evidence if e.metric == "accuracy"] == [e.value for e in result.evidence if e.metric == "accuracy"]
    x_train, _, y_train, _ = arrays
    changed = {**models, "net": _net(x_train, y_train, seed=1)}
    other = assay.judge(changed, task, checks=CHECKS, recipes=recipes, out=out, n_boot=200, progress=False)
    assert store.run_meta(other.run_id)["config_hash"] != store.run_meta(result.run_id)["config_hash"]
    text = store.study_text(other.run_id)
    assert "candidate given in code: net = torch.nn.modules.container.Sequential" in text and "data given in code: digits-arrays" in text


@pytest.mark.parametrize("bad, words", [
    (lambda batch: (torch.zeros(len(batch), 10),) * 2, "tuple"),
    (lambda batch: np.zeros((len(batch), 3)), "(4, 10)"),
    (lambda batch: np.full((len(batch), 10), np.nan), "NaN"),
])
def test_a_refused_model_writes_nothing(task, tmp_path, bad, words):
    with pytest.raises(ModelError, match=None) as caught:
        assay.judge({"bad": bad}, task, checks=["performance"], out=tmp_path / "runs", progress=False)
    message = str(caught.value)
    assert "bad" in message and words in message and "\n" not in message
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())


def test_a_study_file_with_candidates_given_in_code(digits, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('name = "mine-vs-mlp"\n[task]\nbuiltin = "digits"\n[[recipe]]\nname = "mlp"\nkind = "train"\narch = "mlp"\nepochs = 3\n'
                     '[checks]\nrun = ["performance"]\nn_boot = 200\n')
    x = np.asarray(digits.train.x, dtype=np.float32)
    net = _net(x, digits.train.y).eval()
    result = Study.from_file(study, out=tmp_path / "runs", progress=False, candidates={"mine": net}).run()
    assert {c["name"] for c in result.candidates} == {"mine", "mlp"}
    assert not net.training  # given in eval mode, given back in eval mode
    with pytest.raises(SpecError, match="also a candidate given in code"):
        Study.from_file(study, out=tmp_path / "runs", candidates={"mlp": net})


def test_judge_refuses_what_is_not_a_task(models):
    with pytest.raises(SpecError, match="give an assay Task"):
        assay.judge(models, {"x": 1})
