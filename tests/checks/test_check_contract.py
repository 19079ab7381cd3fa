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
        assert e.higher_is_better == type(check).metrics[e.metric].higher_is_better
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
    for metric, declared in known_metrics().items():
        if metric.endswith(("_score", "_accuracy")):
            assert declared.higher_is_better is True, metric
        if metric.endswith(("_error", "_loss", "_ms")):
            assert declared.higher_is_better is False, metric


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


# --- What each check declares: views, metrics, and what is known about each metric. ---

@pytest.mark.parametrize("name", CHECKS)
def test_check_declares_its_views_needs_and_splits(name, digits):
    from assay.data.views import expand_views

    cls = load_all()[name]
    assert isinstance(cls.views, tuple) and cls.views and "clean" in cls.views, f"{name}.views must list 'clean' and its other views"
    assert all(v == "clean" or v.split(":")[0] in ("corrupt", "ood") for v in cls.views), cls.views
    assert expand_views(cls.views, digits)[0] == "clean"  # every pattern expands against a real task
    assert set(cls.needs) <= {"logits", "embeddings"} and set(cls.splits) <= {"train", "val", "test"}
    assert cls.metrics, f"{name} declares no metric"


def test_every_metric_is_produced_by_exactly_one_check():
    owners: dict[str, list[str]] = {}
    for name, cls in load_all().items():
        for metric, declared in cls.metrics.items():
            assert declared.name == metric, f"{name}: metrics key '{metric}' holds the declaration of '{declared.name}'"
            owners.setdefault(metric, []).append(name)
    shared = {m: o for m, o in owners.items() if len(o) > 1}
    assert not shared, shared
    assert set(known_metrics()) == set(owners)


def test_registering_a_check_that_reuses_a_metric_name_is_refused():
    from assay.checks.base import CHECKS, register_check
    from assay.checks.metrics import Metric, declare

    class Copy(Check):
        name = "copy_of_performance"
        metrics = declare(Metric("accuracy", True, "fraction right", scale="proportion"))

    with pytest.raises(ValueError, match="declares accuracy, already produced by 'performance'"):
        register_check(Copy)
    assert "copy_of_performance" not in CHECKS


def test_every_declared_metric_says_what_it_is():
    from assay.checks.metrics import REPORT, SCALES, TERMINAL

    declared = known_metrics()
    for metric, m in declared.items():
        assert m.higher_is_better in (True, False, None), metric
        assert m.meaning.strip() and "\n" not in m.meaning and len(m.meaning) <= 120, f"{metric}: a one-line meaning"
        assert m.scale in SCALES and isinstance(m.unit, str), metric
        assert set(m.summary) <= {REPORT, TERMINAL}, metric
        if m.unit:  # a unit goes with an amount or a count, never with a proportion
            assert m.scale in ("amount", "count"), metric
        if m.paired is not None:
            # A change against the parent is of a declared metric, and a worse change is always a larger one:
            # a drop of a higher-is-better metric, a rise of a lower-is-better one.
            assert m.paired in declared, f"{metric} is paired with undeclared '{m.paired}'"
            assert m.higher_is_better is False, metric
            assert declared[m.paired].higher_is_better is (m.sign == -1), metric
    # The summaries the report and terminal show: the columns they showed before these were declared.
    from assay.checks.metrics import summary_metrics

    assert summary_metrics(REPORT, declared.values()) == ["accuracy", "macro_f1", "ece", "latency_p50_ms", "size_mb", "parameters"]
    assert summary_metrics(TERMINAL, declared.values()) == ["accuracy", "macro_f1", "worst_class_recall", "ece", "latency_p50_ms", "size_mb"]


def test_a_bad_declaration_fails_on_import():
    from assay.checks.metrics import Metric, declare

    with pytest.raises(ValueError, match="unknown scale 'percent'"):
        Metric("x", True, "x", scale="percent")
    with pytest.raises(ValueError, match="needs both 'paired' and a sign"):
        Metric("x_drop", False, "x lost", paired="x")
    with pytest.raises(ValueError, match="declared twice"):
        declare(Metric("x", True, "x"), Metric("x", True, "x"))


@pytest.fixture()
def battery_context(digits, mlp, cnn, tmp_path):
    """cnn judged against mlp (its reference) on digits with a group attribute and two corrupted views computed."""
    from dataclasses import replace

    from assay.checks.base import CheckContext
    from assay.checks.predictions import PredictionCache
    from assay.data.task import Split

    ink = digits.test.x.reshape(len(digits.test), -1).mean(1)
    groups = np.array(["light", "medium", "heavy"])[np.digitize(ink, np.quantile(ink, [1 / 3, 2 / 3]))]
    task = replace(digits, test=Split(digits.test.x, digits.test.y, groups={"ink": groups}))
    return CheckContext(task=task, predictions=PredictionCache(tmp_path / "p"), n_boot=200, candidates={"mlp": mlp, "cnn": cnn},
                        views=("clean", "corrupt:gaussian_noise@3", "corrupt:contrast@5"))


@pytest.mark.parametrize("name", CHECKS)
def test_every_interval_holds_its_point_and_every_value_its_scale(name, cnn, battery_context):
    """On a real CNN judged against a real MLP, every declared metric is measured and checked."""
    from assay.checks.metrics import SCALES

    check = make_check(name, {"repeats": 5} if name == "efficiency" else {})
    evidence = check.run(cnn, battery_context)
    measured = {e.metric for e in evidence if e.metric != SKIPPED}
    # digits has no held-out classes and no user OOD set: only far-OOD is measured on it
    not_here = {"near_ood_auroc", "near_ood_fpr95", "user_ood_auroc", "user_ood_fpr95",  # no holdout classes or user set here
                "attack_success_rate", "poison_recall", "poison_precision", "poison_false_positive_rate"}  # nor a poisoned training set
    assert measured == set(type(check).metrics) - not_here, f"{name} did not measure everything it declares on cnn"
    for e in evidence:
        if e.metric == SKIPPED:
            continue
        declared = type(check).metrics[e.metric]
        lo, hi = SCALES[declared.scale]
        assert lo <= e.value <= hi, f"{e.metric} = {e.value} outside its {declared.scale} scale"
        if declared.scale in ("count", "flag"):
            assert float(e.value).is_integer(), e.metric
        if e.low is not None or e.high is not None:
            assert e.low <= e.value <= e.high, f"{name}.{e.metric}: {e.value} outside its interval [{e.low}, {e.high}]"
            assert lo <= e.low and e.high <= hi, f"{e.metric}: interval [{e.low}, {e.high}] leaves its {declared.scale} scale"


def test_a_check_asked_for_by_name_only_is_left_out_of_the_default_run():
    from assay.checks.base import CHECKS, register_check
    from assay.checks.metrics import Metric, declare
    from assay.spec import parse_study

    class Costly(Check):
        name = "costly_test_check"
        metrics = declare(Metric("costly_test_metric", True, "a figure only asked for by name", scale="real"))
        by_default = False

    register_check(Costly)
    try:
        text = '[task]\nbuiltin = "digits"\n[[recipe]]\nname = "mlp"\nkind = "train"\narch = "mlp"\n'
        default = parse_study(text + "[checks]\n").checks
        assert "costly_test_check" not in default and "performance" in default
        asked = parse_study(text + '[checks]\nrun = ["costly_test_check"]\n').checks
        assert list(asked) == ["costly_test_check"]
    finally:
        CHECKS.pop("costly_test_check", None)
