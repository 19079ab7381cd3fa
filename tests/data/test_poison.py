"""The poison transform and the trigger view: the fraction asked, training rows only, the truth recorded, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assay.data.builtin import load_builtin
from assay.data.task import Task
from assay.data.task_table import load_task
from assay.data.transforms import poison_record
from assay.data.views import apply_view, expand_views
from assay.errors import AssayError, SpecError

HERE = Path(".")
BADNETS = {"kind": "badnets", "fraction": 0.05, "target": "0"}


def _poisoned(seed: int = 0, **options) -> Task:
    return load_task({"builtin": "digits", "poison": {**BADNETS, **options}}, base_dir=HERE, seed=seed)


@pytest.fixture(scope="module")
def clean() -> Task:
    return load_builtin("digits", seed=0)


@pytest.fixture(scope="module")
def poisoned() -> Task:
    return _poisoned()


def test_exactly_the_fraction_asked_of_training_rows_only_is_stamped_and_relabelled(clean, poisoned):
    record = poison_record(poisoned)
    chosen = np.asarray(record["poisoned"])
    n = len(clean.train)
    assert len(chosen) == round(0.05 * n) == 63 and len(np.unique(chosen)) == len(chosen)
    assert (clean.train.y[chosen] != 0).all() and np.array_equal(record["original_labels"], clean.train.y[chosen])
    assert (poisoned.train.y[chosen] == 0).all() and record["target"] == "0" and record["target_index"] == 0
    rest = np.setdiff1d(np.arange(n), chosen)
    assert np.array_equal(poisoned.train.y[rest], clean.train.y[rest])
    assert np.array_equal(poisoned.train.x[rest], clean.train.x[rest])  # untouched rows are byte for byte the same
    patch = poisoned.train.x[chosen][:, :, -3:, -3:]  # the default 3x3 patch on 8x8 digits, at the training maximum
    assert (patch == 1.0).all() and record["trigger"]["size"] == 3
    outside = poisoned.train.x[chosen].copy()
    outside[:, :, -3:, -3:] = clean.train.x[chosen][:, :, -3:, -3:]
    assert np.array_equal(outside, clean.train.x[chosen])  # nothing but the patch changed
    for name in ("val", "test"):
        assert np.array_equal(poisoned.split(name).x, clean.split(name).x) and np.array_equal(poisoned.split(name).y, clean.split(name).y)
    assert poisoned.digest() != clean.digest() and "BadNets poisoning: 63 of 1259" in poisoned.summary()["transforms"][0]


def test_the_same_seed_poisons_the_same_examples_and_another_seed_others(poisoned):
    again, other = _poisoned(seed=0), load_task({"builtin": "digits", "poison": BADNETS, "max_rows": 2000}, base_dir=HERE, seed=0)
    assert poison_record(again)["poisoned"] == poison_record(poisoned)["poisoned"] and again.digest() == poisoned.digest()
    reseeded = _poisoned(seed=1)
    assert poison_record(reseeded)["poisoned"] != poison_record(poisoned)["poisoned"]
    assert poison_record(other)["poisoned"] == poison_record(poisoned)["poisoned"]  # it runs after max_rows, which kept everything


def test_poisoning_runs_after_the_transforms_that_choose_rows():
    task = load_task({"builtin": "digits", "poison": {**BADNETS, "fraction": 0.1}, "max_rows": 300}, base_dir=HERE, seed=0)
    assert [t.key for t in task.transforms] == ["max_rows", "poison"]
    chosen = poison_record(task)["poisoned"]
    assert len(chosen) == round(0.1 * len(task.train)) and max(chosen) < len(task.train)  # indices into the final split


def test_the_trigger_view_stamps_every_non_target_test_row_and_only_those(clean, poisoned):
    view = apply_view(poisoned, "test", "trigger")
    others = clean.test.y != 0
    assert len(view) == others.sum() and np.array_equal(view.y, clean.test.y[others])  # true labels kept
    assert (view.x[:, :, -3:, -3:] == 1.0).all()
    restored = view.x.copy()
    restored[:, :, -3:, -3:] = clean.test.x[others][:, :, -3:, -3:]
    assert np.array_equal(restored, clean.test.x[others])
    assert expand_views(("clean", "trigger:*"), poisoned) == ["clean", "trigger"] and expand_views(("trigger:*",), clean) == []
    named = apply_view(clean, "test", "trigger:patch")  # a trigger given by name: every row of a task never poisoned
    assert len(named) == len(clean.test) and (named.x[:, :, -3:, -3:] == 1.0).all()


def test_the_trigger_view_of_a_task_never_poisoned_says_how_to_get_one(clean):
    with pytest.raises(SpecError, match=r"view 'trigger': the task was not poisoned.*set poison = .*trigger:patch") as error:
        apply_view(clean, "test", "trigger")
    assert "\n" not in str(error.value)


def test_signals_get_a_short_pattern_and_tables_an_out_of_range_value():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 50)
    signal = Task.from_arrays(rng.normal(size=(100, 1, 40)).astype(np.float32), y, rng.normal(size=(40, 1, 40)).astype(np.float32),
                              np.repeat(np.arange(2), 20), modality="signal", class_names=["a", "b"])
    from assay.data.transforms import make_transform, TransformContext

    task = make_transform("poison", {"fraction": 0.1, "target": "b"}, "t").apply(signal, TransformContext(seed=0))
    chosen = poison_record(task)["poisoned"]
    tail = task.train.x[chosen][:, 0, -4:]  # max(4, 40 // 16) samples alternating between the training extremes
    assert np.allclose(tail, [signal.train.x.max(), signal.train.x.min()] * 2)
    table = Task.from_arrays(rng.normal(size=(100, 3)).astype(np.float32), y, rng.normal(size=(40, 3)).astype(np.float32),
                             np.repeat(np.arange(2), 20), modality="tabular", class_names=["a", "b"])
    task = make_transform("poison", {"fraction": 0.1, "target": "a", "column": "2"}, "t").apply(table, TransformContext(seed=0))
    chosen = poison_record(task)["poisoned"]
    assert (task.train.x[chosen][:, 2] > table.train.x[:, 2].max()).all()
    assert np.array_equal(task.train.x[chosen][:, :2], table.train.x[chosen][:, :2])


@pytest.mark.parametrize(("options", "message"), [
    ({"kind": "blend"}, "unknown poisoning kind 'blend'; use kind = \"badnets\""),
    ({"fraction": 0.0}, "'fraction' must be in (0, 0.5]"),
    ({"fraction": 0.6}, "'fraction' must be in (0, 0.5]"),
    ({"target": "10"}, "target '10' is not a class of the task"),
    ({"trigger": "token"}, "trigger 'token' is for text data, the task 'digits' is image; use trigger = \"patch\""),
    ({"trigger": "patchh"}, "unknown trigger 'patchh' (did you mean 'patch'?)"),
    ({"size": 5}, "size 5 does not fit inputs of shape (1, 8, 8); use 1 to 4"),
    ({"fraction": 0.0001}, "is 0 to poison"),
    ({"colour": "red"}, "unknown key 'colour'"),
])
def test_bad_options_get_one_line_errors(options, message):
    with pytest.raises(AssayError) as error:
        _poisoned(**options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_target_suggests_the_class_meant():
    rng = np.random.default_rng(0)
    task = Task.from_arrays(rng.random((60, 1, 8, 8), dtype=np.float32), np.repeat([0, 1], 30), rng.random((20, 1, 8, 8), dtype=np.float32),
                            np.repeat([0, 1], 10), class_names=["cat", "dog"])
    from assay.data.transforms import make_transform, TransformContext

    with pytest.raises(AssayError, match=r"target 'dgo' is not a class of the task \(did you mean 'dog'\?\); classes: cat, dog"):
        make_transform("poison", {"fraction": 0.1, "target": "dgo"}, "t").apply(task, TransformContext())
    with pytest.raises(SpecError, match="poison: must be a table; e.g. poison = "):
        load_task({"builtin": "digits", "poison": 0.05}, base_dir=HERE, seed=0)
