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


def test_group_rates_get_exact_intervals_and_a_rate_from_few_examples_is_wide(mlp, grouped):
    from scipy.stats import binomtest

    ctx = CheckContext(task=grouped, predictions=PredictionCache(None), n_boot=200)
    evidence = {e.metric: e for e in Fairness(positive="1", min_group_size=1).run(mlp, ctx)}
    for row in evidence["worst_group_accuracy"].details["per_group"]:
        for rate in ("accuracy", "tpr", "fpr", "selection_rate"):
            if row[rate] is None:
                continue
            total = row[f"{rate}_of"]
            ci = binomtest(round(row[rate] * total), total).proportion_ci(method="exact")
            assert (row[f"{rate}_low"], row[f"{rate}_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
    for e in evidence.values():
        assert e.low <= e.value <= e.high
    worst = evidence["worst_group_accuracy"]
    row = next(r for r in worst.details["per_group"] if r["group"] == worst.details["worst_group"])
    assert (worst.low, worst.high) == (row["accuracy_low"], row["accuracy_high"])


def test_a_false_positive_rate_of_four_out_of_four_is_not_certain():
    """Seen in issue 9: an FPR of 1.0 [1.0, 1.0] from 4 negatives."""
    from assay.checks.fairness import group_counts
    from assay.stats import proportion_interval

    y = np.array([1] * 16 + [0] * 4 + [1] * 10 + [0] * 10)
    yhat = np.array([1] * 16 + [1] * 4 + [1] * 10 + [0] * 10)
    g = np.array([0] * 20 + [1] * 20)
    successes, totals = group_counts(y, yhat, g, 2, positive=1)
    assert successes[0, 2] == 4 and totals[0, 2] == 4  # group 0: 4 of 4 negatives predicted positive
    low, high = proportion_interval(successes, totals)
    assert high[0, 2] == 1.0 and low[0, 2] == pytest.approx(0.3976, abs=1e-4)
