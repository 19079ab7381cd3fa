"""The contract every registered check keeps."""

import math

import numpy as np
import pytest

from assay.checks import load_all
from assay.checks.base import SKIPPED, Check, Evidence, known_metrics, make_check
from assay.errors import SpecError

CHECKS = sorted(load_all())


@pytest.mark.parametrize("name", CHECKS)
def test_check_returns_evidence_it_declares(name, mlp, context):
    check = make_check(name, {})
    assert isinstance(check, Check) and check.name == name
    evidence = check.run(mlp, context)
    assert evidence and all(isinstance(e, Evidence) for e in evidence)
    for e in evidence:
        assert e.check == name and e.candidate == mlp.name
        if e.metric == SKIPPED:
            assert e.details["reason"]
            continue
        assert e.metric in type(check).metrics, f"{e.metric} is not declared in {name}.metrics"
        assert e.higher_is_better == type(check).metrics[e.metric]
        assert math.isfinite(e.value)
        if e.low is not None:
            assert e.low <= e.value <= e.high
        assert Evidence.from_dict(e.to_dict()) == e


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_deterministic_for_a_seed(name, mlp, context):
    check = make_check(name, {})
    a, b = check.run(mlp, context), check.run(mlp, context)
    assert [e.metric for e in a] == [e.metric for e in b]
    if name != "efficiency":  # wall-clock timings vary by nature
        assert [(e.value, e.low, e.high) for e in a if e.metric != SKIPPED] == [(e.value, e.low, e.high) for e in b if e.metric != SKIPPED]


@pytest.mark.parametrize("name", CHECKS)
def test_check_repr_rebuilds_it(name):
    check = make_check(name, {})
    assert repr(check).startswith(type(check).__name__ + "(")
    assert type(check)(**check.params()).params() == check.params()


def test_unknown_check_option_names_the_key():
    with pytest.raises(SpecError, match=r"unknown key 'nbins' \(did you mean 'n_bins'\?\)"):
        make_check("calibration", {"nbins": 10})


def test_metric_names_follow_the_naming_rule():
    for metric, higher in known_metrics().items():
        if metric.endswith(("_score", "_accuracy")):
            assert higher is True, metric
        if metric.endswith(("_error", "_loss", "_ms")):
            assert higher is False, metric


def test_checks_handle_a_single_example_split(mlp, digits, tmp_path):
    """A tiny slice gives finite values, not a crash."""
    from dataclasses import replace

    from assay.checks.base import CheckContext
    from assay.checks.predictions import PredictionCache

    tiny = replace(digits, test=digits.test.subset(np.arange(1)))
    ctx = CheckContext(task=tiny, predictions=PredictionCache(None), n_boot=100)
    for name in CHECKS:
        for e in make_check(name, {"repeats": 5} if name == "efficiency" else {}).run(mlp, ctx):
            assert math.isfinite(e.value) or e.metric == SKIPPED, (name, e.metric)
