"""calibration: ECE equals torchmetrics', Brier and NLL equal scikit-learn's."""

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from torchmetrics.classification import MulticlassCalibrationError

from assay.checks.calibration import Calibration, brier_loss, expected_calibration_error, nll_loss, reliability_bins


def _torchmetrics_ece(probs, labels, k):
    metric = MulticlassCalibrationError(num_classes=k, n_bins=15, norm="l1")
    return metric(torch.tensor(probs), torch.tensor(labels)).item()


def test_ece_equals_torchmetrics_on_a_trained_model(mlp, context):
    p = context.predict(mlp)
    probs = p.probs.astype(np.float32)
    ours = expected_calibration_error(probs, p.labels, n_bins=15)
    assert ours == pytest.approx(_torchmetrics_ece(probs, p.labels, 10), abs=1e-6)


@pytest.mark.parametrize("temperature", [0.05, 0.5, 3.0])
def test_ece_equals_torchmetrics_when_over_and_underconfident(cnn, context, temperature):
    """Low temperatures push many confidences to exactly 1.0, the edge case of the binning."""
    p = context.predict(cnn)
    probs = torch.softmax(torch.tensor(p.logits) / temperature, dim=1).numpy()
    ours = expected_calibration_error(probs, p.labels, n_bins=15)
    assert ours == pytest.approx(_torchmetrics_ece(probs, p.labels, 10), abs=1e-6)


def test_check_reports_ece_brier_nll_with_intervals(mlp, context):
    evidence = {e.metric: e for e in Calibration(n_bins=15).run(mlp, context)}
    p = context.predict(mlp)
    assert evidence["nll_loss"].value == pytest.approx(log_loss(p.labels, p.probs, labels=range(10)), rel=1e-9)
    onehot = np.eye(10)[p.labels]
    assert evidence["brier_loss"].value == pytest.approx(((p.probs - onehot) ** 2).sum(1).mean(), rel=1e-12)
    for e in evidence.values():
        assert e.low <= e.value <= e.high
    bins = evidence["ece"].details["bins"]
    assert sum(b["count"] for b in bins) == len(p.labels)
    assert evidence["ece"].figures == ("reliability_diagram",)


def test_perfectly_calibrated_and_badly_calibrated_cases():
    labels = np.array([0, 1, 0, 1])
    confident_right = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(confident_right, labels) == 0.0
    confident_wrong = confident_right[:, ::-1]
    assert expected_calibration_error(confident_wrong, labels) == pytest.approx(1.0)
    assert brier_loss(confident_wrong, labels).mean() == pytest.approx(2.0)
    assert nll_loss(confident_right, labels).mean() == pytest.approx(0.0, abs=1e-12)
    assert reliability_bins(confident_right, labels, 15)[-1]["count"] == 4


def test_temperature_scaling_fits_validation_nll(cnn, context):
    from scipy.special import log_softmax

    from assay.checks.calibration import fit_temperature

    val = context.predict(cnn, split="val")
    t = fit_temperature(val.logits, val.labels)

    def nll(temp):
        return -log_softmax(val.logits / temp, axis=1)[np.arange(len(val.labels)), val.labels].mean()

    assert nll(t) <= min(nll(t * 0.9), nll(t * 1.1), nll(1.0)) + 1e-9
    # Logits made 4x overconfident are cooled back by about 4.
    assert fit_temperature(val.logits * 4, val.labels) == pytest.approx(4 * t, rel=0.02)
    evidence = {e.metric: e for e in Calibration().run(cnn, context)}
    assert evidence["nll_loss_temperature_scaled"].details["temperature"] == pytest.approx(t)


def test_ece_interval_holds_its_point_and_reaches_zero_for_a_calibrated_model():
    from assay.checks.calibration import ece_interval

    rng = np.random.default_rng(0)
    confidence = 1 - 0.3 * rng.beta(0.4, 3.0, 269)
    correct = (rng.random(269) < confidence).astype(float)  # calibrated by construction: true ECE 0
    ece = expected_calibration_error(np.column_stack([confidence, 1 - confidence]), 1 - correct.astype(int), 15)
    low, high = ece_interval(confidence, correct, 15, n_boot=500, seed=0)
    assert low == 0.0 and low <= ece <= high < 0.1


def test_ece_record_holds_its_point_and_still_equals_torchmetrics(cnn, context):
    evidence = {e.metric: e for e in Calibration().run(cnn, context)}
    p = context.predict(cnn)
    assert evidence["ece"].value == pytest.approx(_torchmetrics_ece(p.probs.astype(np.float32), p.labels, 10), abs=1e-6)
    for e in evidence.values():
        assert e.low <= e.value <= e.high and e.low >= 0


def test_temperature_scaling_that_hurts_is_flagged():
    from assay.checks.calibration import temperature_warnings

    assert temperature_warnings(1.3, "test", ece=(0.02, 0.01, -0.02, 0.0), nll=(0.10, 0.08, -0.03, -0.01)) == ([], [])
    warnings, notes = temperature_warnings(0.05, "test", ece=(0.004, 0.0041, -0.001, 0.002), nll=(0.0036, 0.0410, 0.02, 0.05))
    (nll,) = warnings
    assert "makes test NLL worse" in nll and "0.0036" in nll and "0.0410" in nll
    (ece,) = notes  # a rise within noise is a note, not a warning
    assert "ECE" in ece and "within noise" in ece


def test_a_temperature_that_hurts_on_test_is_flagged_in_the_record(mlp, digits, tmp_path):
    """Validation labels shuffled: the fitted temperature is far too hot, and test NLL gets worse."""
    from assay.checks.base import CheckContext
    from assay.checks.predictions import PredictionCache

    class ShuffledValidation(PredictionCache):
        def get(self, candidate, task, split="test", view="clean", embeddings=False):
            p = super().get(candidate, task, split=split, view=view, embeddings=embeddings)
            if split == "val":
                from dataclasses import replace

                p = replace(p, labels=np.random.default_rng(0).permutation(p.labels))
            return p

    ctx = CheckContext(task=digits, predictions=ShuffledValidation(tmp_path / "p"), n_boot=100)
    evidence = {e.metric: e for e in Calibration().run(mlp, ctx)}
    scaled = evidence["nll_loss_temperature_scaled"]
    assert scaled.value > evidence["nll_loss"].value
    assert any("makes test NLL worse" in w for w in scaled.details["warnings"])
