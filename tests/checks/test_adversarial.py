"""The adversarial check on the digits CNN: a falling curve without warnings, warnings on a model that hides its gradients,
transfer and Square figures for int8 and ONNX children, and the math of minimal epsilons."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from assay.checks import adversarial_math as am
from assay.checks.adversarial import Adversarial
from assay.checks.base import SKIPPED, CheckContext
from assay.checks.predictions import PredictionCache
from assay.models.candidate import Candidate

FAST = {"n_examples": 96, "epsilons": [0.02, 0.05, 0.1, 0.2], "steps": 10, "queries": 60, "check_examples": 48}


def _values(curve):
    return [p["accuracy"] for p in curve]


def _records(evidence):
    return {e.metric: e for e in evidence if e.metric != SKIPPED}


class Rounded(nn.Module):
    """The CNN behind a rounding of its input to the 17 grey levels digits have: same predictions, zero gradient everywhere."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 16) / 16)


def test_robust_accuracy_falls_with_epsilon_on_the_cnn_and_raises_no_warning(cnn, digits, tmp_path):
    ctx = CheckContext(task=digits, predictions=PredictionCache(tmp_path), n_boot=100)
    found = _records(Adversarial(**FAST).run(cnn, ctx))
    acc, min_eps = found["adversarial_accuracy"], found["median_min_epsilon"]
    curve = acc.details["curve"]
    values = [p["accuracy"] for p in curve]
    assert [p["epsilon"] for p in curve] == FAST["epsilons"]
    assert all(a >= b for a, b in zip(values, values[1:])), values
    assert values[0] > 0.8 and values[-1] < 0.1
    assert acc.value == values[2] and acc.details["headline_epsilon"] == 0.1  # the middle of the list (index len // 2)
    assert all(p["low"] <= p["accuracy"] <= p["high"] for p in curve)
    assert acc.details["warnings"] == [] and min_eps.details["warnings"] == []
    assert acc.details["attack"].startswith("apgd (linf, 10 steps") and acc.details["unit"] == "pixel values on [0, 1]"
    assert 0.02 <= min_eps.value <= 0.2 and min_eps.low <= min_eps.value <= min_eps.high
    assert min_eps.details["method"].startswith("bisection, 5 steps, within the list's bracket (apgd")
    assert min_eps.details["precision"] == pytest.approx((0.2 - 0.1) / 2**5)  # the widest bracket of the list, halved 5 times
    shown = acc.details["examples"]
    assert len(shown) == 4 and np.abs(np.subtract(shown[0]["adversarial"], shown[0]["clean"])).max() <= 0.1 + 1e-4
    # The adversarial examples are views of the cache, on disk: a second cache over the same folder attacks nothing.
    again = PredictionCache(tmp_path)
    _records(Adversarial(**FAST).run(cnn, CheckContext(task=digits, predictions=again, n_boot=100)))
    assert again.attack_seconds == 0.0


def test_a_model_that_hides_its_gradients_gets_masking_warnings(cnn, digits):
    rounded = Candidate("rounded", Rounded(cnn.model), cnn.provenance)
    x = torch.as_tensor(digits.test.x)
    assert torch.equal(rounded.predict(x).argmax(1), cnn.predict(x).argmax(1))  # the same model on digits' own pixels
    ctx = CheckContext(task=digits, predictions=PredictionCache(None), n_boot=100)
    found = _records(Adversarial(**FAST).run(rounded, ctx))
    warnings = found["adversarial_accuracy"].details["warnings"]
    assert any("black-box attack (Square" in w for w in warnings), warnings
    assert any("exactly zero on 100%" in w for w in warnings), warnings
    assert all("not trustworthy" in w for w in warnings if "not converged" not in w)
    # The white-box figure alone flatters it: Square finds what APGD cannot.
    assert found["adversarial_accuracy"].value > 0.5


@pytest.fixture(scope="module")
def children(cnn, digits, tmp_path_factory):
    """The CNN's PyTorch int8 and ONNX Runtime int8 children: no input gradients."""
    from assay.recipes import RecipeContext, make_recipe

    work = tmp_path_factory.mktemp("children")
    out = {}
    for name, kind, options in (("cnn-int8", "quantize", {}), ("cnn-ort-int8", "export", {"precision": "int8"})):
        out[name] = make_recipe(kind, {"parent": "cnn", **options}, name).make(
            name, RecipeContext(task=digits, work_dir=work / name, candidates={"cnn": cnn}, progress=False))
    return out


def test_int8_and_onnx_children_get_transfer_and_square_figures(cnn, children, digits, tmp_path):
    ctx = CheckContext(task=digits, predictions=PredictionCache(tmp_path), n_boot=100, candidates={"cnn": cnn, **children})
    check = Adversarial(**FAST)
    parent = _records(check.run(cnn, ctx))["adversarial_accuracy"]
    for name, child in children.items():
        assert not child.capabilities.differentiable
        acc = _records(check.run(child, ctx))["adversarial_accuracy"]
        d = acc.details
        assert set(d["attacks"]) == {"transfer", "square"}, name
        assert d["attacks"]["transfer"]["description"].startswith("transfer from cnn: apgd") and d["attacks"]["square"]["source"] is None
        assert "no white-box attack" in d["notes"][0]
        assert d["transfer"]["from"] == "cnn" and _values(d["transfer"]["parent_curve"]) == _values(parent.details["curve"])
        # Robust only if it survives both: the combined figure is at most each attack's, and names the one that binds.
        for i, point in enumerate(d["curve"]):
            assert point["accuracy"] <= min(a["curve"][i]["accuracy"] for a in d["attacks"].values())
            assert point["attack"] in ("transfer", "square")
        transfer = [p["accuracy"] for p in d["transfer"]["child_curve"]]
        assert transfer[-1] < 0.5  # the parent's examples transfer to its own int8 copy
    rows = Adversarial(**FAST).sample(ctx)
    assert len(rows) == 96
    # The transfer examples were made once on the parent and shown to both children: the parent's view files and the
    # children's transfer files name the same settings.
    files = sorted(p.name for p in tmp_path.rglob("*-from-*.npz"))
    assert len(files) == 2 * len(FAST["epsilons"]) and all(cnn.id in f for f in files)



def test_an_int8_child_gets_an_l2_square_figure_under_the_l2_threat_model(cnn, children, digits, tmp_path):
    ctx = CheckContext(task=digits, predictions=PredictionCache(tmp_path), n_boot=100, candidates={"cnn": cnn, **children})
    check = Adversarial(**{**FAST, "norm": "l2", "epsilons": [0.5, 1.5]})
    d = _records(check.run(children["cnn-int8"], ctx))["adversarial_accuracy"].details
    assert set(d["attacks"]) == {"transfer", "square"}
    assert d["attacks"]["square"]["description"].startswith("square (l2, ")
    square = [p["accuracy"] for p in d["attacks"]["square"]["curve"]]
    assert square[0] >= square[1] and square[1] < 0.5  # a real attack that grows with the radius

def test_minimal_epsilons_and_their_quantiles():
    correct = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [0, 0, 0, 1]], dtype=bool)  # (E=3, N=4) at eps 0.1, 0.2, 0.3
    found = am.minimal_epsilons(correct, np.array([True, True, False, True]), [0.1, 0.2, 0.3])
    assert found.tolist() == [0.3, 0.2, 0.0, np.inf]
    # The order-statistic interval against its definition: Binomial(n, 1/2) quantiles pick the ranks.
    from scipy.stats import binom

    values = np.arange(1, 101, dtype=float)
    point, low, high = am.quantile_interval(values, 0.5)
    assert point == 50 and low == values[int(binom.ppf(0.025, 100, 0.5)) - 1] and high == values[int(binom.ppf(0.975, 100, 0.5))]
    assert binom.cdf(high - 1, 100, 0.5) - binom.cdf(low - 1, 100, 0.5) >= 0.95  # its coverage
    assert am.quantile_interval(np.array([0.5]), 0.5) == (0.5, 0.5, 0.5)
    # Robust accuracy rising with epsilon is flagged when the discordant examples say so beyond chance, not for one example.
    flags = np.zeros((3, 50), dtype=bool)
    flags[0, :30], flags[1, :10], flags[2, :20] = True, True, True  # 0.6, 0.2, 0.4: ten examples robust at 0.3 but flipped at 0.2
    assert am.rises([0.1, 0.2, 0.3], flags, 0.02) == [(0.2, 0.3, 0.2, 0.4)]
    flags[2, 10:] = False
    flags[2, 10] = True  # one example only
    assert am.rises([0.1, 0.2, 0.3], flags, 0.01) == []


def test_bad_options_name_the_fix():
    with pytest.raises(ValueError, match=r"headline_epsilon = 0.15 is not in epsilons \[0.1, 0.2\]; add it"):
        Adversarial(epsilons=[0.1, 0.2], headline_epsilon=0.15)
    assert Adversarial(attack="square", norm="l2").settings(0).norm == "l2"  # Square Attack has both threat models
    assert Adversarial(norm="l2").epsilons == (0.1, 0.25, 0.5, 1.0, 2.0)
