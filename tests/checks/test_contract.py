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


def test_ood_scores_and_metrics_against_references(cnn, digits):
    """AUROC equals scikit-learn's; AUPR equals average_precision_score; Mahalanobis equals scipy's distance."""
    from scipy.spatial.distance import mahalanobis
    from sklearn.metrics import average_precision_score, roc_auc_score

    from assay.checks.ood import EmbeddingScorer, aupr_out, auroc, fpr_at_tpr

    rng = np.random.default_rng(0)
    ind, ood = np.round(rng.normal(1, 1, 300), 1), np.round(rng.normal(0, 1, 120), 1)  # rounding makes ties
    y = np.r_[np.ones(300), np.zeros(120)]
    assert auroc(ind, ood) == pytest.approx(roc_auc_score(y, np.r_[ind, ood]), abs=1e-12)
    assert aupr_out(ind, ood) == pytest.approx(average_precision_score(1 - y, -np.r_[ind, ood]), abs=1e-12)
    threshold = np.sort(ind)[int(np.floor(0.05 * 300))]
    assert fpr_at_tpr(ind, ood) == pytest.approx((ood >= threshold).mean())

    e = rng.normal(size=(200, 6))
    labels = rng.integers(0, 3, 200)
    scorer = EmbeddingScorer(e, labels)
    q = rng.normal(size=(5, 6))
    expected = [-min(mahalanobis(v, m, scorer.precision) ** 2 for m in scorer.means) for v in q]
    assert scorer.mahalanobis(q) == pytest.approx(expected, rel=1e-9)


def test_histogram_bootstrap_equals_resampling_directly():
    from assay.checks.ood import auroc, bootstrap_auroc_fpr, fpr_at_tpr

    rng = np.random.default_rng(1)
    ind, ood = np.round(rng.normal(1, 1, 97), 1), np.round(rng.normal(0, 1, 41), 1)
    auc, fpr = bootstrap_auroc_fpr(ind, {"set": ood}, 50, np.random.default_rng(7))["set"]
    replay = np.random.default_rng(7)
    ia, ib = replay.integers(0, 97, (50, 97)), replay.integers(0, 41, (50, 41))
    assert auc == pytest.approx(auroc(ind[ia], ood[ib]), abs=1e-12)
    assert fpr == pytest.approx(fpr_at_tpr(ind[ia], ood[ib]), abs=1e-12)
