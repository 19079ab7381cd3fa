"""robustness: mCE and relative mCE against a hand-computed case; the check end to end."""

import numpy as np
import pytest

from assay.checks.robustness import Robustness, corruption_errors, mean_corruption_error, relative_mean_corruption_error


def test_mce_by_hand():
    # Two corruptions, three severities. Model errors and the reference's:
    model = {"noise": np.array([0.1, 0.2, 0.3]), "blur": np.array([0.2, 0.2, 0.2])}
    ref = {"noise": np.array([0.2, 0.3, 0.5]), "blur": np.array([0.1, 0.2, 0.3])}
    # CE_noise = 0.6 / 1.0 = 0.6; CE_blur = 0.6 / 0.6 = 1.0; mCE = 0.8
    assert corruption_errors(model, ref) == pytest.approx({"noise": 0.6, "blur": 1.0})
    assert mean_corruption_error(model, ref) == pytest.approx(0.8)
    # Relative: clean errors 0.05 and 0.1. noise: (0.6-0.15)/(1.0-0.3) = 0.642857; blur: (0.6-0.15)/(0.6-0.3) = 1.5
    assert relative_mean_corruption_error(model, 0.05, ref, 0.1) == pytest.approx((0.45 / 0.7 + 1.5) / 2)


def test_check_reports_per_corruption_accuracy_relative_to_the_reference(mlp, cnn, context):
    context.candidates = {"mlp": mlp, "cnn": cnn}
    own = {e.metric: e for e in Robustness().run(mlp, context)}
    assert own["mce"].value == pytest.approx(1.0) and own["relative_mce"].value == pytest.approx(1.0)  # mlp is the reference
    other = {e.metric: e for e in Robustness(reference="mlp").run(cnn, context)}
    accuracy = other["corruption_accuracy"].details["accuracy"]
    assert len(accuracy) == 9 and all(len(v) == 5 for v in accuracy.values())
    errors = {k: 1 - np.array(v) for k, v in accuracy.items()}
    ref_errors = {k: 1 - np.array(v) for k, v in own["corruption_accuracy"].details["accuracy"].items()}
    assert other["mce"].value == pytest.approx(mean_corruption_error(errors, ref_errors), abs=1e-5)
    assert other["corruption_accuracy"].value == pytest.approx(np.mean([np.mean(v) for v in accuracy.values()]), abs=1e-6)  # details are rounded to 6 places
    for e in other.values():
        assert e.low <= e.value <= e.high
    assert own["mce"].low is None and "by definition" in own["mce"].details["note"]  # the reference itself: no estimate


def test_a_twin_of_the_reference_is_not_certain_to_degrade_alike(mlp, context):
    """Same predictions under every corruption: every resampled ratio is 1, yet the next examples may differ."""
    from dataclasses import replace

    from assay.models.candidate import Candidate
    from assay.stats import proportion_interval

    twin = Candidate("mlp-twin", mlp.model, replace(mlp.provenance, recipe="quantize", parent="mlp"), training={})
    context.candidates = {"mlp": mlp, "mlp-twin": twin}
    records = {e.metric: e for e in Robustness().run(twin, context)}
    mce = records["mce"]
    u = proportion_interval(0, len(context.data.y))[1]
    errors = {k: 1 - np.array(v) for k, v in records["corruption_accuracy"].details["accuracy"].items()}
    used = [k for k in errors if k in mce.details["corruptions"]]
    half = np.mean([5 * u / errors[k].sum() for k in used])  # five severities, the reference's summed error each
    assert mce.value == pytest.approx(1.0) and (mce.low, mce.high) == pytest.approx((1 - half, 1 + half), rel=1e-4)


def test_ood_on_held_out_digits(tmp_path):
    """Classes 8 and 9 held out: every score separates them better than chance."""
    from pathlib import Path

    from assay.checks.base import CheckContext
    from assay.checks.ood import OOD, SCORES
    from assay.checks.predictions import PredictionCache
    from assay.recipes import RecipeContext, make_recipe
    from assay.study import load_task

    task = load_task({"builtin": "digits", "holdout_classes": ["8", "9"]}, base_dir=Path("."), seed=0)
    assert task.num_classes == 8 and len(task.ood) > 40 and -1 not in task.train.y
    model = make_recipe("train", {"arch": "mlp", "epochs": 15}, "x").make("mlp", RecipeContext(task=task, work_dir=tmp_path, progress=False))
    ctx = CheckContext(task=task, predictions=PredictionCache(None), n_boot=200)
    evidence = {e.metric: e for e in OOD().run(model, ctx)}
    table = evidence["near_ood_auroc"].details["table"]["holdout"]
    assert set(table) == set(SCORES)
    assert all(table[s]["auroc"] > 0.6 for s in SCORES), table
    assert evidence["far_ood_auroc"].details["sets"] == ["noise", "inverted"]


def test_a_user_named_ood_set(tmp_path, mlp, digits):
    """[task] ood = { path = ... }: every example of that data becomes the 'user' OOD set."""
    from pathlib import Path

    from assay.checks.base import CheckContext
    from assay.checks.ood import OOD
    from assay.checks.predictions import PredictionCache
    from assay.errors import DataError
    from assay.study import load_task

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "letters.npz", x=rng.random((60, 1, 8, 8)).round(1).astype(np.float32), y=np.arange(60) % 2)
    task = load_task({"builtin": "digits", "ood": {"path": "letters.npz"}}, base_dir=tmp_path, seed=0)
    assert len(task.ood_user) == 60 and task.digest() != digits.digest()
    evidence = {e.metric: e for e in OOD().run(mlp, CheckContext(task=task, predictions=PredictionCache(None), n_boot=100))}
    assert evidence["user_ood_auroc"].details["sets"] == ["user"]
    np.savez(tmp_path / "table.npz", x=rng.random((60, 5)), y=np.arange(60) % 2)
    with pytest.raises(DataError, match="same kind and shape"):
        load_task({"builtin": "digits", "ood": {"path": "table.npz"}}, base_dir=Path(tmp_path), seed=0)


class _Stub:
    """Just enough of a CheckContext: per (candidate, view), which test examples are classified right."""

    def __init__(self, right: dict, n: int, reference: str = "ref") -> None:
        from types import SimpleNamespace

        self.right, self.n = right, n
        self.task = SimpleNamespace(modality="tabular")
        self.candidates = {reference: SimpleNamespace(name=reference)}
        self.reference = self.candidates[reference]
        self.n_boot, self.seed, self.split = 500, 0, "test"

    def predict(self, candidate, split=None, view="clean", embeddings=False):
        from types import SimpleNamespace

        right = self.right[candidate.name][view.split("@")[0]]
        labels = np.zeros(self.n, dtype=np.int64)
        return SimpleNamespace(labels=labels, predicted=np.where(right, 0, 1))


def _wrong(n: int, count: int, offset: int = 0) -> np.ndarray:
    right = np.ones(n, bool)
    right[offset : offset + count] = False
    return right


def _robustness(ref_extra_errors: dict, candidate_extra_errors: int = 40, n: int = 300):
    """A reference and a candidate; each corruption adds errors at every severity beyond 15 clean ones."""
    from types import SimpleNamespace

    kinds = ("feature_noise", "missing_values", "mean_shift")
    right = {
        "ref": {"clean": _wrong(n, 15), **{f"corrupt:{k}": _wrong(n, 15 + ref_extra_errors[k]) for k in kinds}},
        "cand": {"clean": _wrong(n, 15), **{f"corrupt:{k}": _wrong(n, 15 + candidate_extra_errors) for k in kinds}},
    }
    ctx = _Stub(right, n)
    return {e.metric: e for e in Robustness().run(SimpleNamespace(name="cand"), ctx)}


def test_relative_mce_when_the_reference_degrades_under_every_corruption():
    out = _robustness({"feature_noise": 30, "missing_values": 20, "mean_shift": 60})
    rel = out["relative_mce"]
    assert rel.value == pytest.approx(np.mean([40 / 30, 40 / 20, 40 / 60]))
    assert rel.low <= rel.value <= rel.high and rel.details["corruptions"] == ["feature_noise", "missing_values", "mean_shift"]
    assert "skipped" not in out


def test_a_corruption_the_reference_barely_degrades_under_is_left_out_of_relative_mce():
    """One example's worth of degradation is not a denominator: seen as a ratio of -1.8e10 on a table."""
    out = _robustness({"feature_noise": 30, "missing_values": 1, "mean_shift": 60})
    rel = out["relative_mce"]
    assert rel.details["corruptions"] == ["feature_noise", "mean_shift"] and rel.details["left_out"] == ["missing_values"]
    assert rel.value == pytest.approx(np.mean([40 / 30, 40 / 60]))
    assert rel.low <= rel.value <= rel.high < 10
    assert "missing values" in rel.details["left_out_reason"]


def test_relative_mce_is_not_applicable_when_the_reference_does_not_degrade():
    out = _robustness({"feature_noise": 0, "missing_values": 1, "mean_shift": 0})
    assert "relative_mce" not in out
    skipped = out["skipped"]
    assert "relative_mce not applicable" in skipped.details["reason"] and "relative_mce" in skipped.details["metrics"]
    assert skipped.view == "corrupt:*"
    # mCE is still a number: the reference's corrupted error (15 clean mistakes stay) is well above zero.
    assert out["mce"].value == pytest.approx(np.mean([55 / 15, 55 / 16, 55 / 15])) and out["mce"].low <= out["mce"].value <= out["mce"].high


def test_worst_corruption_accuracy_interval_is_that_corruptions_own():
    out = _robustness({"feature_noise": 30, "missing_values": 20, "mean_shift": 60}, candidate_extra_errors=40)
    worst = out["worst_corruption_accuracy"]
    assert worst.value == pytest.approx(1 - 55 / 300) and worst.low <= worst.value <= worst.high


def test_an_auroc_below_chance_is_flagged():
    from assay.checks.ood import auroc_warnings

    assert auroc_warnings("energy", "far", 0.86, 0.89, {"noise": 0.9, "inverted": 0.82}) == []
    (below,) = auroc_warnings("energy", "far", 0.31, 0.36, {"noise": 0.3, "inverted": 0.32})[:1]
    assert "below chance" in below and "significantly" in below
    (one_set,) = auroc_warnings("msp", "far", 0.7, 0.75, {"noise": 0.98, "inverted": 0.42})
    assert "inverted (AUROC 0.420)" in one_set


def test_a_denominator_at_rounding_level_gives_no_ratio():
    """Seen on text: relative mCE -0.12 [-5.7e12, 6.3], from resamples whose degradation was a floating-point 1e-16."""
    from assay.checks.robustness import mean_ratio

    numerators = np.array([[0.2, 0.3], [0.2, 0.3], [0.2, -0.3]])
    denominators = np.array([[0.1, 0.3], [0.1, 1e-16], [0.1, -0.3]])  # (resamples, corruptions)
    out = mean_ratio(numerators, denominators, min_denominator=0.5 / 300)
    assert out[0] == pytest.approx(1.5) and np.isnan(out[1]) and np.isnan(out[2])
