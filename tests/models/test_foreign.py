"""A user's own model as a candidate: real small models on real data, and each refusal one by one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from assay.checks.predictions import PredictionCache
from assay.errors import ModelError
from assay.models.foreign import ForeignCandidate, as_candidate, class_order


class Net(nn.Module):
    """A small MLP of the user's own class, with a features(x) method."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(32, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Wrapped(nn.Module):
    """Calls a function on a trained net's logits: how each bad forward is made."""

    def __init__(self, net: nn.Module, fn) -> None:
        super().__init__()
        self.net, self.fn = net, fn

    def forward(self, x: torch.Tensor):
        return self.fn(self.net(x))


def flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


@pytest.fixture(scope="module")
def net(digits) -> Net:
    """Trained for a few epochs, full batch (a second on the CPU)."""
    torch.manual_seed(0)
    model = Net()
    x, y = torch.tensor(digits.train.x), torch.tensor(digits.train.y)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def logreg(digits) -> LogisticRegression:
    return LogisticRegression(max_iter=300).fit(flat(digits.train.x), digits.train.y)


def probs_of(candidate, task) -> np.ndarray:
    return PredictionCache().get(candidate, task).probs


def test_a_module_is_judged_on_its_own_softmax_and_declares_gradients_and_features(net, digits):
    candidate = as_candidate("net", net, digits)
    with torch.no_grad():
        own = torch.softmax(net(torch.tensor(digits.test.x)), dim=1).double().numpy()
    np.testing.assert_allclose(probs_of(candidate, digits), own, atol=1e-6)
    assert own.argmax(1).__eq__(digits.test.y).mean() > 0.8  # it learned: the comparison is not between two flat outputs
    caps = candidate.capabilities
    assert (caps.differentiable, caps.features, caps.devices) == (True, True, ("cpu", "cuda"))
    embedded = PredictionCache().get(candidate, digits, embeddings=True).embeddings
    np.testing.assert_allclose(embedded, net.features(torch.tensor(digits.test.x)).detach().numpy(), atol=1e-6)
    assert candidate.parameter_count() == sum(p.numel() for p in net.parameters()) == 64 * 32 + 32 + 32 * 10 + 10


def test_a_module_without_features_says_so(digits):
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    caps = as_candidate("plain", plain, digits).capabilities
    assert caps.differentiable and not caps.features
    assert "Sequential has no features(x)" in caps.lacks("features")


def test_probabilities_are_converted_when_declared(net, digits):
    softmaxed = Wrapped(net, lambda z: torch.softmax(z, dim=1)).eval()
    candidate = as_candidate("soft", softmaxed, digits, outputs="probabilities")
    with torch.no_grad():
        own = softmaxed(torch.tensor(digits.test.x)).double().numpy()
    np.testing.assert_allclose(probs_of(candidate, digits), own, atol=1e-6)


def test_the_module_goes_back_in_the_mode_it_came_in_with_a_note(net, digits):
    net.train()
    net.body[3].eval()  # a submodule's own mode is kept too
    try:
        with as_candidate("net", net, digits) as candidate:
            assert not net.training and not net.body[3].training  # judged in eval mode
            assert candidate.notes == ["judged in eval mode; it was given in training mode"]
            assert candidate.describe()["notes"] == candidate.notes
        assert net.training and net.body[1].training and not net.body[3].training
    finally:
        net.eval()
    assert as_candidate("net", net, digits, device="cpu").notes == []  # in eval mode, on the run's device: nothing to say


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_module_on_another_device_is_moved_for_the_run_and_moved_back(net, digits):
    candidate = as_candidate("net", net, digits, device="cuda")
    assert candidate.device.type == "cuda" and "moved from cpu to cuda" in candidate.notes[0]
    with torch.no_grad():
        own = torch.softmax(net(torch.tensor(digits.test.x, device="cuda")), dim=1).double().cpu().numpy()
    np.testing.assert_allclose(PredictionCache(device=torch.device("cuda")).get(candidate, digits).probs, own, atol=1e-5)
    candidate.restore()
    assert next(net.parameters()).device.type == "cpu"


def test_a_module_on_two_devices_is_refused_naming_them(digits):
    split = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    split[1].bias = nn.Parameter(torch.zeros(10, device="meta"))
    with pytest.raises(ModelError, match=r"^split: its weights are on more than one device \(cpu, meta\)"):
        as_candidate("split", split, digits)


@pytest.mark.parametrize("make", ["estimator", "pipeline", "duck"])
def test_predict_proba_gives_the_estimators_own_probabilities(make, logreg, digits):
    if make == "estimator":
        model = logreg
    elif make == "pipeline":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(flat(digits.train.x), digits.train.y)
    else:
        model = Reversed(logreg)  # classes_ in another order than the task's: mapped by name
    candidate = as_candidate(make, model, digits)
    np.testing.assert_allclose(probs_of(candidate, digits), logreg_probs(model, digits), atol=1e-6)
    caps = candidate.capabilities
    assert not caps.differentiable and not caps.features and caps.devices == ("cpu",)
    assert "black box" in caps.lacks("differentiable") and "black box" in caps.lacks("features")
    assert candidate.parameter_count() is None and candidate.describe()["parameters"] is None
    assert np.isnan(candidate.flops_per_sample(torch.tensor(digits.test.x[:1])))


class Reversed:
    """A duck-typed estimator: predict_proba and classes_ in reverse class order, as strings."""

    def __init__(self, inner: LogisticRegression) -> None:
        self.inner = inner
        self.classes_ = np.array([str(c) for c in inner.classes_[::-1]])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict_proba(x.reshape(len(x), -1))[:, ::-1]


def logreg_probs(model, digits) -> np.ndarray:
    own = model.predict_proba(flat(digits.test.x))
    return own[:, ::-1] if isinstance(model, Reversed) else own


def test_a_callable_returning_numpy_or_torch_probabilities(logreg, digits):
    expected = logreg.predict_proba(flat(digits.test.x))
    for fn in (lambda x: logreg.predict_proba(flat(x)), lambda x: torch.tensor(logreg.predict_proba(flat(x)))):
        candidate = as_candidate("fn", fn, digits)
        assert candidate.kind == "callable" and not candidate.capabilities.differentiable
        np.testing.assert_allclose(probs_of(candidate, digits), expected, atol=1e-6)


def test_classes_are_mapped_by_name_or_index_and_a_mismatch_is_refused_naming_both():
    np.testing.assert_array_equal(class_order("m", ["b", "a", "c"], ("a", "b", "c")), [1, 0, 2])
    np.testing.assert_array_equal(class_order("m", [2, 0, 1], ("x", "y", "z")), [1, 2, 0])  # integers 0..K-1: by index
    np.testing.assert_array_equal(class_order("m", [1.0, 0.0], ("0", "1")), [1, 0])  # 1.0 is the class named "1"
    with pytest.raises(ModelError, match=r"^m: its classes_ \['cat', 'dog'\] do not match the task's classes \['0', '1'\]"):
        class_order("m", ["cat", "dog"], ("0", "1"))
    with pytest.raises(ModelError, match=r"classes_ \[0, 1\] do not match the task's classes \['a', 'b', 'c'\]"):
        class_order("m", [0, 1], ("a", "b", "c"))


def test_an_estimator_fitted_on_other_labels_or_shapes_is_refused(logreg, digits):
    strings = LogisticRegression(max_iter=300).fit(flat(digits.train.x), np.array(["odd", "even"])[digits.train.y % 2])
    with pytest.raises(ModelError, match=r"^parity: its classes_ \['even', 'odd'\] do not match the task's classes \['0', '1', "):
        as_candidate("parity", strings, digits)
    small = LogisticRegression(max_iter=300).fit(flat(digits.train.x)[:, :10], digits.train.y)
    with pytest.raises(ModelError, match=r"^small: it was fitted on 10 features, the task's inputs have shape \(1, 8, 8\)"):
        as_candidate("small", small, digits)
    with pytest.raises(ModelError, match='^lr: predict_proba gives probabilities; outputs="logits"'):
        as_candidate("lr", logreg, digits, outputs="logits")


BAD_FORWARDS = {
    "tuple": (lambda z: (z, z), r"^bad: forward returned a tuple of 2 items; return only the logits tensor of shape \(B, K\) = \(4, 10\)"),
    "dict": (lambda z: {"logits": z}, r"^bad: forward returned a dict with keys \['logits'\]; return only the logits tensor"),
    "shape": (lambda z: z[:, :5], r"^bad: forward returned shape \(4, 5\), expected \(B, K\) = \(4, 10\)"),
    "flat": (lambda z: z.argmax(1), r"^bad: forward returned shape \(4,\), expected \(B, K\) = \(4, 10\)"),
    "nan": (lambda z: z * float("nan"), r"^bad: forward returned NaN or infinite values"),
    "inf": (lambda z: z.clamp_max(0) / 0, r"^bad: forward returned NaN or infinite values"),
    "probabilities": (lambda z: torch.softmax(z, 1), r'^bad: its outputs look like probabilities .*; pass outputs="probabilities"'),
    "numpy": (lambda z: z.numpy(), r"^bad: forward returned a ndarray; return a tensor of shape \(B, K\) = \(4, 10\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_FORWARDS))
def test_each_bad_forward_is_refused_on_the_first_batch(case, net, digits):
    fn, message = BAD_FORWARDS[case]
    bad = Wrapped(net, fn).train()
    with pytest.raises(ModelError, match=message):
        as_candidate("bad", bad, digits)
    assert bad.training  # refused, and given back as it came


def test_logits_where_probabilities_were_promised_are_refused(net, digits):
    with pytest.raises(ModelError, match=r'^net: outputs="probabilities" was given but its forward outputs are not probabilities \(values -?[0-9.]+\.\.'):
        as_candidate("net", net, digits, outputs="probabilities")


def test_a_model_that_raises_names_itself_the_input_shape_and_the_first_line(net, digits):
    def broken(z):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nsecond line")

    with pytest.raises(ModelError, match=r"^bad: raised RuntimeError on a batch of shape \(4, 1, 8, 8\): mat1 and mat2 shapes cannot be multiplied; ") as error:
        as_candidate("bad", Wrapped(net, broken), digits)
    assert "second line" not in str(error.value)
    with pytest.raises(ModelError, match=r"^fn: raised KeyError on a batch of shape \(4, 1, 8, 8\): 'pixels'"):
        as_candidate("fn", lambda x: {}["pixels"], digits)


def test_bad_black_box_outputs_are_refused(logreg, digits):
    with pytest.raises(ModelError, match=r"^fn: the callable returned a list of 4 items; return a numpy array or tensor of shape \(B, K\) = \(4, 10\)"):
        as_candidate("fn", lambda x: logreg.predict_proba(flat(x)).tolist(), digits)
    unnormalised = Scaled(logreg, 1.2)
    with pytest.raises(ModelError, match=r"^loose: predict_proba rows do not sum to 1 \(values .*row sums 1\.2\.\.1\.2; tolerance 0\.0001\)"):
        as_candidate("loose", unnormalised, digits)
    assert as_candidate("tight", Scaled(logreg, 1 + 5e-5), digits).kind == "predict_proba"  # within the tolerance
    with pytest.raises(ModelError, match=r"^fn: the callable returned an array of <U1; return numbers"):
        as_candidate("fn", lambda x: np.full((len(x), 10), "a"), digits)
    with pytest.raises(ModelError, match=r"^thing: a int is not a model assay can judge"):
        as_candidate("thing", 3, digits)


class Scaled:
    """predict_proba whose rows sum to ``factor``."""

    def __init__(self, inner: LogisticRegression, factor: float) -> None:
        self.inner, self.factor, self.classes_ = inner, factor, inner.classes_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict_proba(x.reshape(len(x), -1)) * self.factor


class GoesBad(nn.Module):
    """Fine on the first batch, NaN on a later one: every batch is checked, not only the first."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.net(x)
        return out if self.calls == 1 else out * float("nan")


def test_a_model_that_goes_bad_later_is_refused_during_prediction(net, digits):
    candidate = as_candidate("later", GoesBad(net), digits)
    with pytest.raises(ModelError, match=r"^later: forward returned NaN or infinite values"):
        PredictionCache().get(candidate, digits)


def test_save_writes_weights_and_a_description_naming_the_class_and_digest(net, logreg, digits, tmp_path):
    from safetensors.torch import load_file

    module = as_candidate("net", net, digits)
    weights = module.save(tmp_path)
    about = json.loads((tmp_path / "net.json").read_text())
    assert about["arch"]["class"] == f"{__name__}.Net" and about["recipe"] == about["arch"]["name"] == "external"
    assert len(about["arch"]["digest"]) == 64 and about["id"] == module.id and about["parameters"] == module.parameter_count()
    saved = load_file(str(weights))
    assert set(saved) == set(net.state_dict()) and all(torch.equal(saved[k], v) for k, v in net.state_dict().items())
    assert module.deploy_bytes() == weights.stat().st_size

    box = as_candidate("lr", logreg, digits)
    assert box.save(tmp_path) == tmp_path / "lr.json" and not (tmp_path / "lr.safetensors").exists()
    about = json.loads((tmp_path / "lr.json").read_text())
    assert about["arch"]["class"] == "sklearn.linear_model._logistic.LogisticRegression" and about["arch"]["kind"] == "predict_proba"
    assert about["parameters"] is None and about["versions"]["sklearn"]
    assert box.to_bytes() == b""


def test_the_id_is_stable_and_follows_the_weights(net, logreg, digits):
    first, again = as_candidate("net", net, digits), as_candidate("net", net, digits)
    assert first.id == again.id and isinstance(first, ForeignCandidate)
    changed = Net()
    changed.load_state_dict(net.state_dict())
    with torch.no_grad():
        changed.head.bias[0] += 1e-3
    assert as_candidate("net", changed, digits).id != first.id
    assert as_candidate("lr", logreg, digits).id == as_candidate("lr", logreg, digits).id
    same_line = [as_candidate(n, f, digits) for n, f in (("a", lambda x: logreg.predict_proba(flat(x))), ("b", lambda x: logreg.predict_proba(flat(x))))]
    assert same_line[0].id != same_line[1].id  # a lambda has no content to hash: its name keeps two apart
    assert as_candidate("a", lambda x: logreg.predict_proba(flat(x)), digits).id == as_candidate("a", lambda x: logreg.predict_proba(flat(x)), digits).id
    refit = LogisticRegression(max_iter=300, C=0.5).fit(flat(digits.train.x), digits.train.y)
    assert as_candidate("lr", refit, digits).id != as_candidate("lr", logreg, digits).id

    def predict(x):
        return model.predict_proba(flat(x))

    model = logreg
    before = as_candidate("fn", predict, digits).id
    model = refit  # the same function, reading another model: its outputs tell them apart
    assert as_candidate("fn", predict, digits).id != before


def test_a_table_pipeline_is_given_raw_rows(tmp_path):
    """A scikit-learn pipeline with its own encoders, fitted on raw rows, judged on the rows the task's features decode to."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import OneHotEncoder

    from assay.data.sources import table_task

    wine = load_wine(as_frame=True)
    frame = wine.data.iloc[:, :6].copy()
    frame["vintage"] = np.where(wine.data["alcohol"] > 13, "old", "young")  # a categorical column the pipeline encodes itself
    frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[wine.target]
    task = table_task(frame, label="cultivar", name="wine", source="wine")
    raw_train = task.pipeline.inverse(task.train.x)
    assert isinstance(raw_train, pd.DataFrame) and list(raw_train.columns) == list(frame.columns[:-1])
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["vintage"]), remainder=StandardScaler()),
        LogisticRegression(max_iter=500),
    ).fit(raw_train, np.array(task.class_names)[task.train.y])
    candidate = as_candidate("pipe", model, task)
    expected = model.predict_proba(task.pipeline.inverse(task.test.x))[:, [list(model.classes_).index(c) for c in task.class_names]]
    np.testing.assert_allclose(probs_of(candidate, task), expected, atol=1e-6)
    assert (probs_of(candidate, task).argmax(1) == task.test.y).mean() > 0.8


def test_efficiency_times_the_module_itself_without_the_per_batch_output_checks(net, digits, monkeypatch):
    import assay.models.adapters as adapters
    from assay.checks.base import CheckContext
    from assay.checks.efficiency import Efficiency

    candidate = as_candidate("net", net, digits)
    x = torch.tensor(digits.test.x[:8])
    with torch.no_grad():
        assert torch.equal(candidate.timed_predict(x), net(x))
    checked = []
    original = adapters.checked_logits
    monkeypatch.setattr(adapters, "checked_logits", lambda *a, **k: checked.append(1) or original(*a, **k))
    context = CheckContext(task=digits, predictions=PredictionCache(None), n_boot=100)
    evidence = Efficiency(repeats=5, warmup=1, batch_size=16, batch_repeats=3).run(candidate, context)
    assert any(e.metric.startswith("latency") for e in evidence)
    assert len(checked) == 2  # the FLOP count's pass and the memory estimate's; none of the 6 + 4 timed calls
    candidate.predict(x)
    assert len(checked) == 3  # predict still validates; only the timing leaves it out
    probabilities = as_candidate("p", nn.Sequential(net, nn.Softmax(dim=1)), digits, outputs="probabilities")
    probabilities.timed_predict(x)
    assert len(checked) == 5  # the probe, then the timed call: a module giving probabilities is timed through predict: their conversion is part of reading it
