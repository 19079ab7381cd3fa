"""The file loaders count test rows that also appear in train or val, as Task.from_arrays does: CSV, Parquet, NPZ, image folders."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_wine

from assay.data.images import load_image_folder
from assay.data.overlap import SHARED_ROWS
from assay.data.sources import load_npz, load_table
from assay.data.task import Task
from assay.data.task_table import load_task

COPIED = 3  # train rows copied into the test set


@pytest.fixture(scope="module")
def wine_split() -> pd.DataFrame:
    """Wine with a split column: 120 train, 20 val, 38 test rows, and 3 train rows copied into test."""
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    frame["split"] = ["train"] * 120 + ["val"] * 20 + ["test"] * 38
    copies = frame.iloc[[5, 60, 110]].assign(split="test")
    return pd.concat([frame, copies], ignore_index=True)


def _shared_by_merge(frame: pd.DataFrame) -> int:
    """Test rows equal to a train or val row in every feature, by pandas' own merge (independent of assay)."""
    features = [c for c in frame.columns if c not in ("label", "split")]
    seen = frame[frame.split != "test"][features].drop_duplicates()
    return int(frame[frame.split == "test"][features].merge(seen, how="inner").shape[0])


def _shared_by_tuples(task: Task) -> int:
    seen = {tuple(row.ravel()) for split in (task.train, task.val) for row in np.asarray(split.x)}
    return sum(tuple(row.ravel()) in seen for row in np.asarray(task.test.x))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_counts_the_test_rows_it_shares_with_train(wine_split, tmp_path, suffix, caplog):
    path = tmp_path / f"wine{suffix}"
    wine_split.to_csv(path, index=False) if suffix == ".csv" else wine_split.to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING, logger="assay"):
        task = load_table(path, label="label", split_column="split")
    assert task.info[SHARED_ROWS] == COPIED == _shared_by_merge(wine_split)
    assert task.summary()[SHARED_ROWS] == COPIED  # what the report's task table shows
    assert f"{COPIED} of {len(task.test)} test rows also appear in train or val" in caplog.text


def test_a_table_without_shared_rows_says_zero_and_stays_quiet(wine_split, tmp_path, caplog):
    path = tmp_path / "wine.csv"
    wine_split.iloc[:-COPIED].to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="assay"):
        task = load_table(path, label="label", split_column="split")
    assert task.info[SHARED_ROWS] == 0 and "test rows also appear" not in caplog.text


def test_npz_counts_the_same_as_task_from_arrays(tmp_path):
    x, y = load_wine(return_X_y=True)
    x_test, y_test = np.concatenate([x[140:], x[[5, 60, 110]]]), np.concatenate([y[140:], y[[5, 60, 110]]])
    arrays = {"x_train": x[:120], "y_train": y[:120], "x_val": x[120:140], "y_val": y[120:140], "x_test": x_test, "y_test": y_test}
    np.savez(tmp_path / "wine.npz", **arrays)
    task = load_npz(tmp_path / "wine.npz")
    in_memory = Task.from_arrays(x[:120], y[:120], x_test, y_test, x_val=x[120:140], y_val=y[120:140])
    assert task.info[SHARED_ROWS] == in_memory.info[SHARED_ROWS] == COPIED == _shared_by_tuples(task)


@pytest.mark.parametrize("lazy", [False, True])
def test_an_image_folder_counts_test_images_equal_to_train_images(tmp_path, lazy):
    digits = load_digits()
    root = tmp_path / "imgs"
    for i in range(60):
        folder = root / ("test" if i % 4 == 0 else "train") / f"c{digits.target[i] % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(folder / f"{i:03d}.png")
    for i in (1, 2, 3):  # three train images copied into test under other names
        source = next((root / "train").rglob(f"{i:03d}.png"))
        shutil.copy(source, root / "test" / source.parent.name / f"copy{i}.png")
    task = load_image_folder(root, lazy=lazy)
    assert task.info[SHARED_ROWS] == _shared_by_tuples(task) >= COPIED  # digits itself may repeat an image across splits
    assert task.info[SHARED_ROWS] == COPIED + _shared_by_tuples(load_image_folder(_without_copies(root, tmp_path / "plain")))


def _without_copies(root, target):
    shutil.copytree(root, target)
    for copy in target.rglob("copy*.png"):
        copy.unlink()
    return target


def test_a_study_task_counts_again_after_its_transforms_change_the_splits(wine_split, tmp_path, caplog):
    wine_split.to_csv(tmp_path / "wine.csv", index=False)
    table = {"path": "wine.csv", "label": "label", "split_column": "split"}
    whole = load_task(table, base_dir=tmp_path, seed=0)
    caplog.clear()
    small = load_task({**table, "max_rows": 20}, base_dir=tmp_path, seed=0)
    assert whole.info[SHARED_ROWS] == COPIED and len(small.test) == 20
    assert small.info[SHARED_ROWS] == _shared_by_tuples(small)
    caplog.clear()
    kept = load_task({**table, "max_rows": 30}, base_dir=tmp_path, seed=0)
    assert kept.info[SHARED_ROWS] == _shared_by_tuples(kept) > 0  # here a copied row survives: the second warning says why it differs
    assert f"after the task's transforms (max_rows), {kept.info[SHARED_ROWS]} of 30 test rows" in caplog.text
