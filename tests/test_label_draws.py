"""Few-label recipes repeated over labelled draws, and the report's label-efficiency summary."""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from assay.evidence import Evidence
from assay.errors import SpecError
from assay.stats import t_interval
from assay.report.label_efficiency import label_efficiency_section, label_points, paired_gaps
from assay.spec import parse_study
from assay.study import Study, load_task

STUDY = """
name = "draws"
[task]
builtin = "digits"
[[recipe]]
name = "small"
kind = "train"
arch = "mlp"
arch_options = { hidden = [16] }
epochs = 6
labels_per_class = 5
draws = 3
[[recipe]]
name = "wide"
kind = "train"
arch = "mlp"
arch_options = { hidden = [128] }
epochs = 6
labels_per_class = 5
draws = 3
[checks]
run = ["performance"]
n_boot = 200
"""


def test_a_draw_is_the_same_labelled_subset_for_every_recipe_and_another_draw_is_not():
    task = load_task({"builtin": "digits"}, base_dir=Path("."), seed=0)
    first, again, second = (task.with_labels_per_class(5, seed=0, draw=d) for d in (1, 1, 2))
    assert np.array_equal(first.train.x, again.train.x)
    assert not np.array_equal(first.train.x, second.train.x)
    assert np.bincount(second.train.y).tolist() == [5] * 10
    # draw 0 is the single-draw subset studies had before draws existed
    assert np.array_equal(task.with_labels_per_class(5, seed=0).train.x, task.with_labels_per_class(5, seed=0, draw=0).train.x)


def test_draws_make_one_candidate_per_draw_and_the_report_pairs_them(tmp_path):
    result = Study(parse_study(STUDY), out=tmp_path, progress=False).run()
    names = [c["name"] for c in result.candidates]
    assert names == [f"{r}.draw{d}" for r in ("small", "wide") for d in (1, 2, 3)]
    assert [c["config"]["label_draw"] for c in result.candidates] == [1, 2, 3, 1, 2, 3]
    accuracy = {e.candidate: e.value for e in result.evidence if e.metric == "accuracy"}

    candidates = result.candidates
    headline = {e.candidate: {e.metric: e} for e in result.evidence if e.metric == "accuracy"}
    task = {"class_counts": {"train": [120] * 10}}
    points = label_points(candidates, headline, task)
    assert [(p.family, p.k, len(p.by_draw)) for p in points] == [('train (mlp) arch_options={"hidden": [128]}', 5, 3),
                                                                        ('train (mlp) arch_options={"hidden": [16]}', 5, 3)]
    wide, small = [accuracy[f"wide.draw{d}"] for d in (1, 2, 3)], [accuracy[f"small.draw{d}"] for d in (1, 2, 3)]
    # the interval over draws is scipy's t-interval of the mean
    reference = stats.t.interval(0.95, 2, loc=np.mean(small), scale=stats.sem(small))
    assert points[1].mean == pytest.approx(np.mean(small))
    assert points[1].interval == pytest.approx(reference)
    # the paired gap against the leader is scipy's paired t-test interval
    gap = paired_gaps(points)[0]
    leader, other = (wide, small) if np.mean(wide) >= np.mean(small) else (small, wide)
    paired = stats.ttest_rel(other, leader).confidence_interval(0.95)
    assert gap["gap"] == pytest.approx(np.mean(np.subtract(other, leader)))
    assert (gap["low"], gap["high"]) == pytest.approx((paired.low, paired.high))
    assert gap["significant"] == (paired.high < 0 or paired.low > 0)

    section = label_efficiency_section(candidates, headline, task)
    assert section["columns"] == ["5"] and section["rows"][0]["cells"][0]["draws"] == "mean of 3 draws"
    html = result.report.read_text()
    assert "Label efficiency" in html and "mean of 3 draws" in html and "paired by draw" in html


def test_t_interval_of_identical_values_is_a_point():
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)


@pytest.mark.parametrize("extra, message", [
    ("draws = 3", "add labels_per_class"),
    ("labels_per_class = 5\ndraws = 0", "draws must be a positive integer"),
    ('labels_per_class = 5\ndraws = 2\n[[recipe]]\nname = "q"\nkind = "quantize"\nparent = "m"', 'name one draw, e.g. parent = "m.draw1"'),
])
def test_bad_draws_are_one_line_errors(extra, message):
    text = f'[task]\nbuiltin = "digits"\n[[recipe]]\nname = "m"\nkind = "train"\narch = "mlp"\n{extra}\n'
    with pytest.raises(SpecError, match=message):
        parse_study(text)


def test_settings_that_change_with_the_label_count_keep_one_line():
    def made(name, k, epochs, value):
        return {"name": name, "recipe": "train", "arch": {"name": "gru"}, "config": {"labels_per_class": k, "epochs": epochs}}, \
            {name: {"accuracy": Evidence("performance", "accuracy", name, value)}}

    rows = [made("a-8", 8, 60, 0.7), made("a-32", 32, 30, 0.8), made("b-8", 8, 90, 0.75)]
    candidates, headline = [c for c, _ in rows], {k: v for _, h in rows for k, v in h.items()}
    points = label_points(candidates, headline, {})
    # a-8 and b-8 are two configurations at 8 labels: split and named by their epochs; a-32 joins neither average
    assert sorted((p.family, p.k, p.mean) for p in points) == [
        ("train (gru) epochs=30", 32, 0.8), ("train (gru) epochs=60", 8, 0.7), ("train (gru) epochs=90", 8, 0.75)]
    points = label_points(candidates[:2], headline, {})
    assert [(p.family, p.k) for p in points] == [("train (gru)", 8), ("train (gru)", 32)]  # no clash: one line
