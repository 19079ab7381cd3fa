"""The trivial baseline: majority-class accuracy, the paired gain over it, and the beats_baseline gate."""

import numpy as np
import pytest

from assay.checks.baseline import majority_class
from assay.stats import paired_difference_interval
from assay.checks.base import make_check


def test_newcombe_interval_covers_the_truth_and_holds_its_point():
    """Method 10 of Newcombe (1998) at nominal 95%: coverage >= 93% over 1,000 seeded paired samples."""
    rng = np.random.default_rng(0)
    for n, p_both, p_first_only, p_second_only in ((40, 0.7, 0.15, 0.05), (300, 0.85, 0.03, 0.02), (25, 0.0, 0.0, 0.0)):
        truth = p_first_only - p_second_only
        covered = 0
        for _ in range(1000):
            cell = rng.choice(4, size=n, p=[p_both, p_first_only, p_second_only, 1 - p_both - p_first_only - p_second_only])
            first, second = np.isin(cell, (0, 1)), np.isin(cell, (0, 2))
            point, low, high = paired_difference_interval(first, second)
            assert low <= point <= high and point == pytest.approx(first.mean() - second.mean())
            covered += low <= truth <= high
        assert covered / 1000 >= 0.93, (n, covered)


def test_baseline_check_on_a_real_model(mlp, context, digits):
    evidence = {e.metric: e for e in make_check("baseline", {}).run(mlp, context)}
    majority = majority_class(digits.train.y, digits.num_classes)
    y = digits.test.y
    assert evidence["baseline_accuracy"].value == pytest.approx(np.mean(y == majority))
    predicted = context.predict(mlp).predicted
    assert evidence["accuracy_gain_over_baseline"].value == pytest.approx(np.mean(predicted == y) - np.mean(y == majority))
    assert evidence["beats_baseline"].value == 1.0
    assert evidence["baseline_balanced_accuracy"].value == pytest.approx(1 / digits.num_classes)


STUDY = """
name = "noise"
seed = 0
[task]
path = "noise.csv"
label = "approved"
[[recipe]]
name = "mlp"
kind = "train"
arch = "mlp"
epochs = 3
[checks]
run = ["performance"]
n_boot = 200
[policy]
gates = ["accuracy >= 0.5", "beats_baseline"]
"""


def test_a_candidate_that_does_not_beat_the_baseline_fails_its_gate(tmp_path, capsys):
    """Features carry no signal and 85% are approved: a model can pass accuracy >= 0.5 and still lose to always-approve."""
    import pandas as pd

    from assay.cli import main

    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    frame["approved"] = np.where(rng.random(n) < 0.85, "yes", "no")
    frame.to_csv(tmp_path / "noise.csv", index=False)
    (tmp_path / "noise.toml").write_text(STUDY)
    code = main(["run", str(tmp_path / "noise.toml"), "--out", str(tmp_path / "runs"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "beats_baseline >= 1 (got 0)" in out
    report = next((tmp_path / "runs").glob("noise-*/report.html")).read_text()
    assert "Trivial baseline: always &#39;yes&#39; (the most frequent class in train)" in report
    assert "Not better than the trivial baseline on test" in report
