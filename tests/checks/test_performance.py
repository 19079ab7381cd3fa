"""performance: numbers equal scikit-learn's on the same predictions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from assay.checks.performance import Performance, accuracy, macro_f1, per_class_recall
from assay.checks.stats import confusion_matrices


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
    from assay.checks.stats import bootstrap

    p = context.predict(mlp)
    correct = (p.predicted == p.labels).astype(float)
    vectorised = bootstrap(lambda idx: correct[idx].mean(1), len(correct), n_boot=200, seed=3, chunk_elements=len(correct) * 7)
    rng = np.random.default_rng(3)
    looped = np.concatenate([correct[rng.integers(0, len(correct), size=(b, len(correct)))].mean(1) for b in [7] * 28 + [4]])
    assert np.array_equal(vectorised, looped)
