"""Task transforms: the registry applies each as before, in the declared order, validated, recorded and hashed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from assay.data.builtin import load_builtin
from assay.data.task import Split, Task
from assay.data.task_table import load_task
from assay.data.transforms import (
    TRANSFORMS, Change, HoldoutClasses, LabelsPerClass, TaskTransform, TransformContext, make_transform, register, transforms_in,
)
from assay.errors import DataError, SpecError

HERE = Path(".")


@pytest.fixture(scope="module")
def digits() -> Task:
    return load_builtin("digits", seed=0)


def _same_split(a: Split, b: Split) -> bool:
    return np.array_equal(np.asarray(a.x), np.asarray(b.x)) and np.array_equal(a.y, b.y)


# --- each transform does what the code before the registry did ------------------------------------------------------


def _labels_reference(task: Task, k: int, seed: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
    """The labelled subset as ``Task.with_labels_per_class`` drew it before the registry (train, then val, one rng)."""
    rng = np.random.default_rng([seed, k] if draw == 0 else [seed, k, draw])
    kept = []
    for split, n in ((task.train, k), (task.val, max(2, k))):
        chosen = np.concatenate([rng.permutation(np.flatnonzero(split.y == c))[:n] for c in range(task.num_classes)])
        kept.append(np.sort(chosen))
    return kept[0], kept[1]


@pytest.mark.parametrize(("k", "seed", "draw"), [(8, 0, 0), (5, 3, 0), (5, 0, 2), (1, 0, 0)])
def test_labels_per_class_keeps_the_examples_it_kept_before(k, seed, draw):
    digits = load_builtin("digits", seed=seed)  # the study seed splits the data and draws the labels
    train, val = _labels_reference(digits, k, seed, draw)
    task = load_task({"builtin": "digits", "labels_per_class": {"labels_per_class": k, "draw": draw}}, base_dir=HERE, seed=seed)
    assert _same_split(task.train, digits.train.subset(train)) and _same_split(task.val, digits.val.subset(val))
    assert len(task.val) == max(2, k) * 10 and _same_split(task.test, digits.test)
    unlabelled = np.concatenate([np.delete(digits.train.x, train, axis=0), np.delete(digits.val.x, val, axis=0)])
    assert np.array_equal(task.pool.x, unlabelled) and (task.pool.y == -1).all()
    assert task.transforms[-1].record["kept"] == {"train": train.tolist(), "val": val.tolist()}


def test_the_task_method_and_a_recipe_use_the_same_transform(digits):
    by_method = digits.with_labels_per_class(5, seed=0, draw=1)
    by_registry = LabelsPerClass(labels_per_class=5, draw=1).apply(digits, TransformContext(seed=0))
    assert by_method.digest() == by_registry.digest() and _same_split(by_method.train, by_registry.train)
    assert by_method.transforms[0].options == {"labels_per_class": 5, "draw": 1, "seed": 0}


def test_holdout_classes_removes_them_everywhere_and_keeps_their_test_examples_as_ood(digits):
    task = load_task({"builtin": "digits", "holdout_classes": ["8", 9]}, base_dir=HERE, seed=0)
    assert task.class_names == tuple("01234567")
    for name, split in task.labelled_splits():
        before = digits.split(name)
        kept = before.y < 8  # classes 8 and 9 are the last two: the others keep their index
        assert _same_split(split, before.subset(kept))
        assert task.transforms[0].record["removed"][name] == np.flatnonzero(~kept).tolist()
    assert np.array_equal(task.ood.x, digits.test.x[digits.test.y >= 8]) and (task.ood.y == -1).all()


def test_holdout_re_indexes_the_classes_that_remain(digits):
    task = digits.without_classes(["0"])
    assert task.class_names == tuple("123456789")
    assert np.array_equal(task.train.y, digits.train.y[digits.train.y > 0] - 1)
    assert task.transforms[0].key == "holdout_classes"


def test_a_user_ood_set_is_every_example_of_the_other_data(tmp_path, digits):
    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "letters.npz", x=x, y=np.arange(60) % 2)
    task = load_task({"builtin": "digits", "ood": {"path": "letters.npz"}}, base_dir=tmp_path, seed=0)
    assert len(task.ood_user) == 60 and sorted(map(bytes, task.ood_user.x)) == sorted(map(bytes, x))
    assert task.transforms[0].record == {"source": str(tmp_path / "letters.npz"), "examples": 60}
    assert _same_split(task.train, digits.train)


# --- one declared order, whatever the order of the file -----------------------------------------------------------------


def test_transforms_run_in_the_declared_order_whatever_the_order_in_the_file(digits):
    one = load_task({"builtin": "digits", "labels_per_class": 4, "holdout_classes": ["9"]}, base_dir=HERE, seed=0)
    other = load_task({"holdout_classes": ["9"], "labels_per_class": 4, "builtin": "digits"}, base_dir=HERE, seed=0)
    by_hand = digits.without_classes(["9"]).with_labels_per_class(4, seed=0)
    assert [t.key for t in one.transforms] == ["holdout_classes", "labels_per_class"]
    assert one.digest() == other.digest() == by_hand.digest()
    assert _same_split(one.train, by_hand.train) and one.num_classes == 9 and len(one.train) == 36


def test_the_registry_is_ordered_and_each_transform_says_how_it_is_written():
    orders = [cls.order for cls in TRANSFORMS.values()]
    assert len(set(orders)) == len(orders)
    assert {"holdout_classes", "ood", "labels_per_class"} <= set(TRANSFORMS)
    for key, cls in TRANSFORMS.items():
        assert cls.key == key and cls.example.startswith(f"{key} = ")


def test_adding_a_transform_is_one_registered_class(digits):
    @register
    class DropFirst(TaskTransform):
        key, order, example = "drop_first", 5, "drop_first = 3"

        def __init__(self, *, drop_first: int) -> None:
            self.drop_first = drop_first

        def change(self, task: Task, context: TransformContext) -> Change:
            gone = np.arange(self.drop_first)
            return Change(dataclasses.replace(task, train=task.train.subset(np.arange(self.drop_first, len(task.train)))),
                          f"first {self.drop_first} train examples dropped", {"train": gone})

    try:
        task = load_task({"builtin": "digits", "labels_per_class": 2, "drop_first": 3}, base_dir=HERE, seed=0)
        assert [t.key for t in task.transforms] == ["drop_first", "labels_per_class"]  # order 5 runs before 30
        assert task.transforms[0].record == {"train": [0, 1, 2]} and "first 3 train examples dropped" in task.summary()["transforms"]
        with pytest.raises(SpecError, match="'drop_first' must be an integer"):
            load_task({"builtin": "digits", "drop_first": "3"}, base_dir=HERE, seed=0)
    finally:
        del TRANSFORMS["drop_first"]


def test_a_second_transform_cannot_take_a_key_or_an_order_already_taken():
    for key, order in (("labels_per_class", 99), ("new_one", LabelsPerClass.order)):
        clash = type("Clash", (TaskTransform,), {"key": key, "order": order})
        with pytest.raises(TypeError, match="already"):
            register(clash)


# --- bad values: one line naming the key and the fix ---------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("labels_per_class", 0, "'labels_per_class' must be at least 1, got 0; e.g. labels_per_class = 8"),
    ("labels_per_class", 2.5, "'labels_per_class' must be an integer, got 2.5; e.g. labels_per_class = 8"),
    ("labels_per_class", True, "'labels_per_class' must be an integer, got true"),
    ("labels_per_class", {"labels_per_class": 4, "drawn": 1}, "unknown key 'drawn' (did you mean 'draw'?)"),
    ("labels_per_class", {"labels_per_class": 4, "draw": -1}, "'draw' must be at least 0, got -1"),
    ("holdout_classes", [], 'holdout_classes must name at least one class, e.g. holdout_classes = ["8", "9"]'),
    ("holdout_classes", "9", 'write holdout_classes = ["9"]'),
    ("holdout_classes", [1.5], "'holdout_classes' must be a list of"),
    ("ood", "other", 'ood: must be a table, e.g. ood = { path = "other_images" }'),
])
def test_bad_options_are_one_line_errors_naming_the_key_and_the_fix(key, value, expected):
    with pytest.raises(SpecError) as caught:
        transforms_in({"builtin": "digits", key: value}, "study.toml [task]")
    message = str(caught.value)
    assert message.startswith("study.toml [task]") and expected in message and "\n" not in message


def test_bad_values_are_refused_before_the_data_is_read(tmp_path):
    with pytest.raises(SpecError, match="labels_per_class"):
        load_task({"path": "missing.csv", "labels_per_class": 0}, base_dir=tmp_path, seed=0)  # not 'missing.csv: not found'


def test_unknown_transform_names_the_registered_ones():
    with pytest.raises(SpecError, match="unknown transform 'holdout_class' \\(did you mean 'holdout_classes'\\?\\)"):
        make_transform("holdout_class", ["9"], "[task]")


def test_what_the_data_cannot_give_is_refused_naming_the_fix(digits):
    with pytest.raises(DataError, match=r"\[task\]: labels_per_class = 500 but class .* use labels_per_class <="):
        load_task({"builtin": "digits", "labels_per_class": 500}, base_dir=HERE, seed=0, where="[task]")
    with pytest.raises(DataError, match=r"holdout_classes \['x'\] are not classes of the task"):
        HoldoutClasses(holdout_classes=["x"]).apply(digits)


# --- recorded: digest, summary, report -------------------------------------------------------------------------------


def test_the_digest_changes_when_a_transforms_options_change(digits):
    def digest(**table) -> str:
        return load_task({"builtin": "digits", **table}, base_dir=HERE, seed=0).digest()

    base = digest(labels_per_class=8)
    assert base == digest(labels_per_class=8)
    assert len({base, digest(labels_per_class=9), digest(labels_per_class={"labels_per_class": 8, "draw": 1}), digests_seed_1(), digits.digest()}) == 5
    assert digest(holdout_classes=["9"]) != digest(holdout_classes=["8"])


def digests_seed_1() -> str:
    return load_builtin("digits", seed=0).with_labels_per_class(8, seed=1).digest()


def test_the_same_examples_reached_by_a_transform_hash_apart_from_an_untouched_task(digits):
    held = digits.without_classes(["9"])
    bare = Task(name=held.name, modality=held.modality, class_names=held.class_names, train=held.train, val=held.val, test=held.test,
                ood=held.ood)
    assert bare.digest() != held.digest()  # the record is part of what the hash names


def test_the_summary_lists_each_transform_in_the_order_it_ran(digits):
    task = load_task({"builtin": "digits", "labels_per_class": 8, "holdout_classes": ["8", "9"]}, base_dir=HERE, seed=0)
    assert task.summary()["transforms"] == [
        f"classes 8, 9 held out as near-OOD (their {len(task.ood)} test examples)",
        "train: 8 labels per class, val: 8 per class, seed 0; the rest unlabelled in the pool",
    ]
    assert "transforms" not in digits.summary()
    json.dumps([t.__dict__ for t in task.transforms])  # every record is JSON: a check (or the store) can keep the truth


def test_the_report_shows_the_transforms_once_each(digits):
    from assay.report import ReportData, render_html

    task = load_task({"builtin": "digits", "labels_per_class": 8, "holdout_classes": ["8", "9"]}, base_dir=HERE, seed=0)
    data = ReportData(run_id="t-1", study_name="t", created="", task=task.summary(), candidates=[], evidence=[], decision=None,
                      study_text="", environment={})
    html = render_html(data)
    for line in task.summary()["transforms"]:
        assert html.count(line) == 1, line
