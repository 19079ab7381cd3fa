"""fairness: numbers equal Fairlearn's on the same predictions."""

from dataclasses import replace

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from assay.checks.base import CheckContext
from assay.checks.fairness import Fairness
from assay.checks.predictions import PredictionCache
from assay.data.task import Split


@pytest.fixture()
def grouped(digits):
    """Digits with a real group attribute: how much ink the writer used (three bands)."""
    ink = digits.test.x.reshape(len(digits.test), -1).mean(1)
    band = np.digitize(ink, np.quantile(ink, [1 / 3, 2 / 3]))
    groups = np.array(["light", "medium", "heavy"])[band]
    return replace(digits, test=Split(digits.test.x, digits.test.y, groups={"ink": groups}))


def test_metrics_equal_fairlearn(mlp, grouped):
    ctx = CheckContext(task=grouped, predictions=PredictionCache(None), n_boot=200)
    evidence = {e.metric: e for e in Fairness(positive="1", min_group_size=1).run(mlp, ctx)}
    p = ctx.predict(mlp)
    groups = grouped.test.groups["ink"]
    positive = grouped.class_names.index("1")
    yt, yp = (p.labels == positive).astype(int), (p.predicted == positive).astype(int)

    kw = dict(sensitive_features=groups)
    assert evidence["demographic_parity_difference"].value == pytest.approx(demographic_parity_difference(yt, yp, **kw), abs=1e-9)
    assert evidence["demographic_parity_ratio"].value == pytest.approx(demographic_parity_ratio(yt, yp, **kw), abs=1e-9)
    assert evidence["equalized_odds_difference"].value == pytest.approx(equalized_odds_difference(yt, yp, **kw), abs=1e-9)

    frame = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "selection_rate": selection_rate},
        y_true=yt, y_pred=yp, **kw,
    )
    accuracy = MetricFrame(metrics=accuracy_score, y_true=p.labels, y_pred=p.predicted, **kw)  # multi-class accuracy per group
    per_group = {g["group"]: g for g in evidence["worst_group_accuracy"].details["per_group"]}
    for group, row in frame.by_group.iterrows():
        for metric in ("tpr", "fpr", "selection_rate"):
            assert per_group[group][metric] == pytest.approx(row[metric], abs=1e-9)
        assert per_group[group]["accuracy"] == pytest.approx(accuracy.by_group[group], abs=1e-9)
        assert per_group[group]["accuracy_low"] <= per_group[group]["accuracy"] <= per_group[group]["accuracy_high"]
    assert evidence["worst_group_accuracy"].value == pytest.approx(accuracy.group_min(), abs=1e-9)


def test_no_group_attribute_is_skipped_with_a_reason(mlp, digits):
    ctx = CheckContext(task=digits, predictions=PredictionCache(None), n_boot=100)
    (record,) = Fairness().run(mlp, ctx)
    assert record.metric == "skipped" and "no group attribute" in record.details["reason"]
