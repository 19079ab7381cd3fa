"""Tasks from data in memory: Task.from_arrays, from_frame, from_dataset, on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from torch.utils.data import TensorDataset

from assay.data.builtin import _rdataset
from assay.data.overlap import SHARED_ROWS, shared_rows
from assay.data.sources import load_table
from assay.data.splitting import stratified_split
from assay.data.task import Split, Task
from assay.errors import DataError


@pytest.fixture(scope="module")
def digits_arrays():
    """scikit-learn's digits as (N, 1, 8, 8) in [0, 1], split as the builtin loader splits them."""
    bunch = load_digits()
    x, y = (bunch.images.astype(np.float32) / 16.0)[:, None], bunch.target.astype(np.int64)
    return x, y, stratified_split(y, (0.7, 0.15, 0.15), seed=0, source="digits")


@pytest.fixture(scope="module")
def cancer():
    bunch = load_breast_cancer()
    return bunch.data, bunch.target, tuple(bunch.target_names)


@pytest.fixture(scope="module")
def hmda_frame():
    """The bundled HMDA table (examples/hmda.toml), prepared as the builtin loader prepares it."""
    frame = _rdataset("AER", "HMDA").drop(columns=["rownames"])
    frame["race"] = frame.pop("afam").map({"yes": "African American", "no": "not African American"})
    return frame


def test_from_arrays_with_given_splits_equals_the_builtin_digits(digits, digits_arrays):
    x, y, (train, val, test) = digits_arrays
    task = Task.from_arrays(x[train], y[train], x[test], y[test], x_val=x[val], y_val=y[val], name="digits")
    assert task.class_names == digits.class_names and task.modality == "image" == digits.modality
    for s in ("train", "val", "test"):
        assert task.split(s).digest() == digits.split(s).digest()
    assert task.info["split rule"] == "given train/val/test" and task.info[SHARED_ROWS] == 0


def test_images_without_channel_and_tensors_are_accepted(digits, digits_arrays):
    x, y, (train, val, test) = digits_arrays
    task = Task.from_arrays(torch.as_tensor(x[train, 0]), torch.as_tensor(y[train]), x[test, 0], y[test].tolist(),
                            x_val=x[val, 0], y_val=y[val], modality="image")
    assert task.input_shape == (1, 8, 8) and task.test.digest() == digits.test.digest()


def test_a_missing_val_is_carved_stratified_and_reproducible(digits_arrays):
    x, y, (train, _, test) = digits_arrays
    first, again, other = (Task.from_arrays(x[train], y[train], x[test], y[test], seed=s) for s in (3, 3, 4))
    assert first.val.digest() == again.val.digest() and first.train.digest() == again.train.digest()
    assert first.val.digest() != other.val.digest()
    assert len(first.train) + len(first.val) == len(train)
    counts, given = np.bincount(first.val.y, minlength=10), np.bincount(y[train], minlength=10)
    assert np.all(np.abs(counts - 0.15 * given) <= 1)  # every class in proportion
    assert first.info["split rule"] == "given train/test; val is 15% of train (stratified, seed 3)"
    assert first.summary()["split rule"] == first.info["split rule"]  # the report's task facts read the summary


def test_string_and_integer_labels_map_to_class_names(cancer):
    x, y, names = cancer  # names: ('malignant', 'benign'), label 0 = malignant
    by_index = Task.from_arrays(x[:400], y[:400], x[400:], y[400:], class_names=names)
    assert by_index.class_names == names and by_index.modality == "tabular"
    as_text = np.array(names)[y]
    by_name = Task.from_arrays(x[:400], as_text[:400], x[400:], as_text[400:], class_names=names)
    assert by_name.test.digest() == by_index.test.digest()
    sorted_names = Task.from_arrays(x[:400], as_text[:400], x[400:], as_text[400:])
    assert sorted_names.class_names == ("benign", "malignant")
    np.testing.assert_array_equal(sorted_names.test.y, 1 - by_index.test.y)


def test_from_dataset_equals_from_arrays(cancer):
    x, y, names = cancer
    train = TensorDataset(torch.as_tensor(x[:400], dtype=torch.float32), torch.as_tensor(y[:400]))
    test = TensorDataset(torch.as_tensor(x[400:], dtype=torch.float32), torch.as_tensor(y[400:]))
    task = Task.from_dataset(train, test, class_names=names, seed=1)
    arrays = Task.from_arrays(x[:400].astype(np.float32), y[:400], x[400:].astype(np.float32), y[400:], class_names=names, seed=1)
    assert task.digest() != "" and all(task.split(s).digest() == arrays.split(s).digest() for s in ("train", "val", "test"))
    assert task.info["source"] == "Task.from_dataset"


def test_groups_follow_their_rows_into_the_carved_val(cancer):
    x, y, names = cancer
    sex = np.where(np.arange(len(y)) % 3 == 0, "a", "b")
    task = Task.from_arrays(x[:400], y[:400], x[400:], y[400:], groups={"g": {"train": sex[:400], "test": sex[400:]}})
    assert sorted(task.test.groups) == ["g"] and len(task.val.groups["g"]) == len(task.val)
    rows = {r.tobytes(): g for r, g in zip(x[:400].astype(np.float32), sex[:400])}
    assert all(rows[r.tobytes()] == g for r, g in zip(task.val.x, task.val.groups["g"]))
    assert task.groups_hint().startswith("pass groups=")


def test_test_rows_shared_with_train_are_counted_not_refused(cancer):
    x, y, _ = cancer
    test_x, test_y = np.concatenate([x[400:], x[:7]]), np.concatenate([y[400:], y[:7]])  # 7 train rows copied into test
    task = Task.from_arrays(x[:400], y[:400], test_x, test_y, x_val=x[380:390], y_val=y[380:390])
    assert task.info[SHARED_ROWS] == 7 and task.summary()[SHARED_ROWS] == 7
    x_train = np.concatenate([x[:400], x[:2]])  # a row twice in train is still one shared test row
    assert shared_rows([x_train, x[:0]], x[:3]) == 3 and shared_rows([x[:400]], x[400:]) == 0
    carved = Task.from_arrays(x[:400], y[:400], x[390:], y[390:])  # val was train: its rows count too
    assert carved.info[SHARED_ROWS] == 10


def _arrays(cancer):
    x, y, _ = cancer
    return {"x_train": x[:400], "y_train": y[:400], "x_test": x[400:], "y_test": y[400:]}


def _with(base, **changes):
    return {**base, **changes}


@pytest.mark.parametrize("change, expected", [
    (lambda a: {"x_test": np.where(np.arange(a["x_test"].size).reshape(a["x_test"].shape) == 65, np.nan, a["x_test"])},
     "Task.from_arrays: x_test holds NaN or infinite values in 1 row(s) (first: row 2); replace or drop those rows"),
    (lambda a: {"x_train": np.full_like(a["x_train"], np.inf)}, "Task.from_arrays: x_train holds NaN or infinite values in 400 row(s)"),
    (lambda a: {"y_train": np.zeros(400, int)}, "Task.from_arrays: y_train has 1 distinct value; a classifier needs at least two"),
    (lambda a: {"y_test": np.where(np.arange(169) == 5, 2, a["y_test"]), "class_names": ["malignant", "benign"]},
     "Task.from_arrays: y_test holds label 2 (1 row(s)) outside class_names indices 0..1 of ['malignant', 'benign']; add it to class_names"),
    (lambda a: {"y_test": np.array(["malignant"] * 168 + ["unknown"]), "y_train": np.array(["benign", "malignant"] * 200), "class_names": ["malignant", "benign"]},
     "Task.from_arrays: y_test holds label 'unknown' (1 row(s)) outside class_names ['malignant', 'benign']"),
    (lambda a: {"x_test": a["x_test"][:, :20]}, "Task.from_arrays: splits differ in input shape (x_train (30,), x_test (20,)); every split needs the same shape"),
    (lambda a: {"y_test": a["y_test"][:100]}, "Task.from_arrays: x_test has 169 rows but y_test has 100; give one label per row"),
    (lambda a: {"x_val": a["x_train"][:10]}, "Task.from_arrays: has x_val but no y_val; give both or neither"),
    (lambda a: {"y_train": a["y_train"].reshape(200, 2)}, "give x_train as (N, ...) inputs and y_train as (N,) labels"),
    (lambda a: {"y_test": a["y_test"].astype(str)}, "Task.from_arrays: y_test holds strings but y_train numbers; give labels of one kind"),
    (lambda a: {"y_test": a["y_test"] + 0.5}, "Task.from_arrays: y_test holds 0.5, not a class"),
    (lambda a: {"modality": "image"}, "Task.from_arrays: x_train has shape (400, 30) but modality 'image' takes (3, 4)-dimensional"),
    (lambda a: {"modality": "video"}, "unknown modality 'video'"),
    (lambda a: {"groups": {"g": {"train": np.zeros(400)}}}, "Task.from_arrays: groups['g'] has no 'test' values; give one value per row of x_test"),
    (lambda a: {"groups": {"g": {"train": np.zeros(400), "test": np.zeros(3)}}}, "groups['g']['test'] has shape (3,) for 169 rows of x_test"),
])
def test_each_refusal_names_the_input(cancer, change, expected):
    arrays = _arrays(cancer)
    with pytest.raises(DataError) as error:
        Task.from_arrays(**_with(arrays, **change(arrays)))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_datasets_that_are_not_pairs_or_differ_in_shape_are_refused(cancer):
    x, y, _ = cancer
    good = TensorDataset(torch.as_tensor(x[:50]), torch.as_tensor(y[:50]))
    with pytest.raises(DataError, match=r"Task.from_dataset: train\[0\] is tuple of 1; a Dataset must give \(input, label\) pairs"):
        Task.from_dataset(TensorDataset(torch.as_tensor(x[:50])), good)
    ragged = [(x[i, : 30 - (i == 4)], y[i]) for i in range(50)]
    with pytest.raises(DataError, match=r"test\[4\] has input shape \(29,\) but test\[0\] has \(30,\)"):
        Task.from_dataset(good, ragged)


def _hmda_parts(frame):
    y = frame["deny"].astype(str).to_numpy()
    codes = np.unique(y, return_inverse=True)[1]
    return stratified_split(codes, (0.7, 0.15, 0.15), seed=0)


def test_from_frame_encodes_as_a_table_file_does(tmp_path, hmda_frame):
    train, val, test = _hmda_parts(hmda_frame)
    split = np.empty(len(hmda_frame), dtype=object)
    split[train], split[val], split[test] = "train", "val", "test"
    hmda_frame.assign(split=split).to_csv(tmp_path / "hmda.csv", index=False)
    from_file = load_table(tmp_path / "hmda.csv", label="deny", groups=["race"], split_column="split")
    rows = pd.read_csv(tmp_path / "hmda.csv").drop(columns=["split"])
    task = Task.from_frame(rows.iloc[train], rows.iloc[test], val_df=rows.iloc[val], label="deny", groups=["race"])
    assert task.class_names == from_file.class_names and task.modality == "tabular"
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(task.split(s).x, from_file.split(s).x)
        np.testing.assert_array_equal(task.split(s).y, from_file.split(s).y)
        np.testing.assert_array_equal(task.split(s).groups["race"], from_file.split(s).groups["race"])
    assert task.pipeline.feature_names() == from_file.pipeline.feature_names()
    assert task.info[SHARED_ROWS] == 0 and task.info["split rule"] == "given train/val/test"


def test_from_frame_carves_val_from_train_rows(hmda_frame):
    train, _, test = _hmda_parts(hmda_frame)
    one, two = (Task.from_frame(hmda_frame.iloc[train], hmda_frame.iloc[test], label="deny", seed=5) for _ in range(2))
    assert one.val.digest() == two.val.digest() and len(one.train) + len(one.val) == len(train)
    share = np.bincount(one.val.y) / np.bincount(hmda_frame["deny"].iloc[train].eq("yes").astype(int))
    assert np.all(np.abs(share - 0.15) < 0.01)
    assert one.info["split rule"] == "given train/test; val is 15% of train (stratified, seed 5)"


@pytest.mark.parametrize("change, expected", [
    (lambda b: {"test_df": b["test_df"].drop(columns=["pirat"])},
     "Task.from_frame: test_df lacks columns ['pirat'] that train_df has; every split needs the same columns"),
    (lambda b: {"test_df": b["test_df"].assign(extra=1)}, "Task.from_frame: test_df has columns ['extra'] that train_df lacks"),
    (lambda b: {"test_df": b["test_df"].assign(pirat=np.where(np.arange(len(b["test_df"])) == 3, np.inf, b["test_df"]["pirat"]))},
     "Task.from_frame(test_df): column 'pirat' holds infinite values in 1 row(s) (first: row 3)"),
    (lambda b: {"train_df": b["train_df"].assign(deny="no")}, "Task.from_frame: train_df['deny'] has 1 distinct value; a classifier needs at least two"),
    (lambda b: {"label": "denny"}, "Task.from_frame(train_df): no label column 'denny' (did you mean 'deny'?)"),
    (lambda b: {"test_df": b["test_df"].to_numpy()}, "Task.from_frame: test_df is a ndarray; give a pandas DataFrame"),
    (lambda b: {"groups": ["rac"]}, "Task.from_frame: no group column 'rac' (did you mean 'race'?)"),
])
def test_frame_refusals_name_the_frame(hmda_frame, change, expected):
    base = {"train_df": hmda_frame.iloc[:1500], "test_df": hmda_frame.iloc[1500:].reset_index(drop=True), "label": "deny"}
    with pytest.raises(DataError) as error:
        Task.from_frame(**{**base, **change(base)})
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_frame_rows_shared_with_train_are_counted(hmda_frame):
    train, test = hmda_frame.iloc[:1500], pd.concat([hmda_frame.iloc[1500:], hmda_frame.iloc[:4]])
    task = Task.from_frame(train, test, val_df=hmda_frame.iloc[1400:1500], label="deny", groups=["race"])
    assert task.info[SHARED_ROWS] == 4 + _duplicates_across(hmda_frame.iloc[:1500], hmda_frame.iloc[1500:])


def _duplicates_across(train, test) -> int:
    """Test rows equal to a train row in every feature column (real HMDA holds a few), by pandas' own merge."""
    columns = [c for c in train.columns if c not in ("deny", "race")]
    return int(test[columns].merge(train[columns].drop_duplicates(), how="inner").shape[0])


def test_split_rejects_nothing_new():
    """A Task built by hand is untouched: the in-memory checks live in the constructors only."""
    x = np.zeros((6, 2), np.float32)
    task = Task(name="t", modality="tabular", class_names=("a", "b"), **{s: Split(x, np.array([0, 1] * 3)) for s in ("train", "val", "test")})
    assert SHARED_ROWS not in task.info
