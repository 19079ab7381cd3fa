"""performance: numbers equal scikit-learn's on the same predictions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from assay.checks.performance import Performance, accuracy, macro_f1, per_class_recall
from assay.stats import confusion_matrices


def _by_metric(evidence):
    return {e.metric: e for e in evidence}


def test_metrics_equal_sklearn_on_a_trained_model(mlp, context):
    evidence = _by_metric(Performance().run(mlp, context))
    p = context.predict(mlp)
    y, yhat = p.labels, p.predicted
    assert evidence["accuracy"].value == pytest.approx(accuracy_score(y, yhat), abs=1e-12)
    assert evidence["macro_f1"].value == pytest.approx(f1_score(y, yhat, average="macro"), abs=1e-12)
    assert evidence["balanced_accuracy"].value == pytest.approx(balanced_accuracy_score(y, yhat), abs=1e-12)
    recalls = recall_score(y, yhat, average=None)
    assert evidence["worst_class_recall"].value == pytest.approx(recalls.min(), abs=1e-12)
    per_class = evidence["worst_class_recall"].details["per_class"]
    assert [c["recall"] for c in per_class] == pytest.approx(recalls.tolist(), abs=1e-12)


def test_macro_f1_handles_classes_missing_from_predictions_like_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    yhat = np.where(rng.random(200) < 0.6, y, 0)  # classes never predicted
    yhat[yhat == 3] = 4
    cm = confusion_matrices(y, yhat, 5, np.arange(200)[None])[0]
    assert macro_f1(cm) == pytest.approx(f1_score(y, yhat, average="macro", zero_division=0), abs=1e-12)
    assert accuracy(cm) == pytest.approx(accuracy_score(y, yhat))
    assert per_class_recall(cm) == pytest.approx(recall_score(y, yhat, average=None, zero_division=0))


def test_intervals_contain_the_value_and_are_seeded(mlp, context):
    a = Performance().run(mlp, context)
    b = Performance().run(mlp, context)
    for e, f in zip(a, b):
        assert e.low <= e.value <= e.high
        assert (e.low, e.high) == (f.low, f.high)


def test_bootstrap_interval_matches_a_plain_loop(mlp, context):
    """The vectorised bootstrap gives exactly what resampling one by one gives."""
    from assay.stats import bootstrap

    p = context.predict(mlp)
    correct = (p.predicted == p.labels).astype(float)
    vectorised = bootstrap(lambda idx: correct[idx].mean(1), len(correct), n_boot=200, seed=3, chunk_elements=len(correct) * 7)
    rng = np.random.default_rng(3)
    looped = np.concatenate([correct[rng.integers(0, len(correct), size=(b, len(correct)))].mean(1) for b in [7] * 28 + [4]])
    assert np.array_equal(vectorised, looped)


def test_proportions_get_exact_intervals_equal_to_scipy(mlp, context):
    from scipy.stats import binomtest

    evidence = _by_metric(Performance().run(mlp, context))
    p = context.predict(mlp)
    correct, n = int((p.predicted == p.labels).sum()), len(p.labels)
    reference = binomtest(correct, n).proportion_ci(method="exact")
    assert (evidence["accuracy"].low, evidence["accuracy"].high) == pytest.approx((reference.low, reference.high), abs=1e-12)
    for row in evidence["worst_class_recall"].details["per_class"]:
        members = p.labels == context.task.class_names.index(row["class"])
        ci = binomtest(int((p.predicted[members] == p.labels[members]).sum()), int(members.sum())).proportion_ci(method="exact")
        assert (row["low"], row["high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    worst = evidence["worst_class_recall"]
    row = next(r for r in worst.details["per_class"] if r["class"] == worst.details["worst_class"])
    assert (worst.low, worst.high) == (row["low"], row["high"])


def test_a_perfect_model_is_not_certain():
    """269 of 269 right: accuracy 1.000 [0.986, 1], not [1.000, 1.000] (issue 9)."""
    from types import SimpleNamespace

    y = np.arange(269) % 10
    prediction = SimpleNamespace(labels=y, predicted=y.copy())
    ctx = SimpleNamespace(predict=lambda c, **kw: prediction, task=SimpleNamespace(num_classes=10, class_names=[str(i) for i in range(10)]),
                          n_boot=200, seed=0)
    evidence = _by_metric(Performance().run(SimpleNamespace(name="perfect"), ctx))
    assert evidence["accuracy"].value == 1.0 and evidence["accuracy"].low == pytest.approx(0.98638, abs=1e-5)
    assert evidence["worst_class_recall"].high == 1.0 and evidence["worst_class_recall"].low < 0.9


def test_a_perfect_record_gets_a_macro_f1_interval_below_one(cnn, digits):
    """Every resample of a perfect record is perfect; the bound comes from the most errors consistent with none seen."""
    from assay.checks.performance import perfect_macro_f1_low
    from assay.stats import proportion_interval

    support = np.bincount(digits.test.y, minlength=digits.num_classes)
    n = int(support.sum())
    low = perfect_macro_f1_low(support, n)
    assert 0.95 < low < 1
    # The bound holds in the worst case it claims: the most errors Clopper-Pearson allows, all out of the smallest class.
    errors = proportion_interval(0, n)[1] * n
    small, other = support.min(), support.max()
    f1 = np.ones(len(support))
    f1[np.argmin(support)] = 2 * (small - errors) / (2 * (small - errors) + errors)
    f1[np.argmax(support)] = 2 * other / (2 * other + errors)
    assert low <= f1.mean() < 1
    # On a real model: the interval is [low, 1] when it makes no error, the bootstrap's otherwise.
    from assay.checks.base import CheckContext, make_check
    from assay.checks.predictions import PredictionCache

    record = next(e for e in make_check("performance", {}).run(cnn, CheckContext(task=digits, predictions=PredictionCache(None), n_boot=200))
                  if e.metric == "macro_f1")
    if record.value == 1.0:
        assert (record.low, record.high) == (low, 1.0)
    else:
        assert record.low < record.value <= record.high
