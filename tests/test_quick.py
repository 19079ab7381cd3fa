"""Quick mode (``assay run --quick``) and the ``max_rows`` transform it rests on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assay.data.transforms import MaxRows, TransformContext, make_transform
from assay.errors import SpecError
from assay.spec import QUICK_BOOT, QUICK_OPTIONS, QUICK_ROWS, load_study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quick_version_caps_training_draws_rows_and_resamples():
    full = load_study(EXAMPLES / "label_efficiency.toml")
    quick = full.quick_version()
    assert quick.quick and not full.quick
    assert quick.task["max_rows"] == QUICK_ROWS and quick.n_boot == min(full.n_boot, QUICK_BOOT)
    assert max(r.draw for r in quick.recipes) == 2 < max(r.draw for r in full.recipes)
    by_name = {r.name: r for r in quick.recipes}
    assert by_name["scratch-8.draw1"].options["epochs"] == QUICK_OPTIONS["epochs"] < 60
    assert by_name["selfsup-8.draw1"].options["pretrain_epochs"] == QUICK_OPTIONS["pretrain_epochs"]  # its default (100) is capped too
    assert by_name["transfer-8.draw1"].options["epochs"] == QUICK_OPTIONS["epochs"]  # left to the strategy in the file, set here
    assert quick.config_hash(0) != full.config_hash(0)  # a quick run never resumes a full one


def test_quick_version_keeps_smaller_values_and_measures_one_severity():
    spec = load_study(EXAMPLES / "digits.toml")
    tiny = type(spec.recipes[0])(spec.recipes[0].name, "train", {**spec.recipes[0].options, "warmup_epochs": 0, "epochs": 1})
    quick = type(spec)(**{**spec.__dict__, "recipes": (tiny, *spec.recipes[1:])}).quick_version()
    assert quick.recipes[0].options["epochs"] == 1 and quick.recipes[1].options["epochs"] == QUICK_OPTIONS["epochs"]
    assert quick.checks["robustness"]["severities"] == [3]
    assert quick.checks["efficiency"]["repeats"] <= 20


def test_max_rows_keeps_each_class_share_and_is_seeded(digits):
    capped = MaxRows(max_rows=100).apply(digits, TransformContext(seed=0))
    for name in ("train", "val", "test"):
        before, after = getattr(digits, name), getattr(capped, name)
        assert len(after) <= 100 + digits.num_classes
        share = np.bincount(before.y, minlength=10) * len(after) / len(before)
        assert np.all(np.abs(np.bincount(after.y, minlength=10) - share) <= 1.0)
    again = MaxRows(max_rows=100).apply(digits, TransformContext(seed=0))
    other = MaxRows(max_rows=100).apply(digits, TransformContext(seed=1))
    assert capped.train.digest() == again.train.digest() != other.train.digest()
    (applied,) = capped.transforms
    kept = np.asarray(applied.record["kept"]["train"])
    np.testing.assert_array_equal(digits.train.subset(kept).y, capped.train.y)  # the record is the truth
    assert capped.digest() != digits.digest()


def test_max_rows_leaves_small_splits_alone_and_refuses_nonsense(digits):
    same = MaxRows(max_rows=10_000).apply(digits, TransformContext(seed=0))
    assert same.test.digest() == digits.test.digest()
    with pytest.raises(SpecError, match="max_rows"):
        make_transform("max_rows", 0, "[task]")
