"""slices: intervals, multiple-testing correction, and finding a planted bad slice."""

import numpy as np
import pytest

from assay.checks.slices import metadata_slices
from assay.stats import holm, proportion_interval


def test_slice_interval_known_values():
    # Clopper-Pearson interval for 8/10 at 95%: [0.444, 0.975]
    low, high = proportion_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.444, 0.975)
    assert proportion_interval(0, 20)[0] == 0.0


def test_holm_matches_the_textbook_procedure():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> monotone .06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_metadata_slices_split_categories_and_quartiles():
    meta = {"colour": np.array(["a", "b", "a", "c"] * 10), "age": np.arange(40.0)}
    masks = metadata_slices(meta)
    assert masks["colour = a"].sum() == 20
    quartiles = [m for name, m in masks.items() if name.startswith("age in")]
    assert len(quartiles) == 4 and sum(m.sum() for m in quartiles) == 40


def test_a_planted_bad_slice_is_found_and_significant(mlp, digits, tmp_path):
    from dataclasses import replace

    from assay.checks.base import CheckContext
    from assay.checks.predictions import PredictionCache
    from assay.checks.slices import Slices
    from assay.data.task import Split

    # Blank out the images of one 'scanner' so the model fails on them.
    scanner = np.where(np.arange(len(digits.test)) % 6 == 0, "old", "new")
    x = digits.test.x.copy()
    x[scanner == "old"] = 0.0
    task = replace(digits, test=Split(x, digits.test.y, meta={"scanner": scanner}))
    ctx = CheckContext(task=task, predictions=PredictionCache(None), n_boot=100)
    worst, count = Slices().run(mlp, ctx)
    assert worst.details["worst"][0]["slice"] == "scanner = old"
    assert worst.details["worst"][0]["significant"] and count.value >= 1
    assert worst.low <= worst.value <= worst.high
