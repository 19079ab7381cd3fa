"""Loaders: real small data written to disk, read back, and every bad input named."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_wine

from assay.data.images import load_image_folder
from assay.data.sources import load_npz, load_table
from assay.data.task_table import load_source
from assay.errors import DataError, SpecError


def write_digits(root, n=90, size=None, layout=None):
    digits = load_digits()
    for i in range(n):
        label = digits.target[i] % 3
        folder = root / (layout(i) if layout else "") / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8))
        if size and i % 2:
            img = img.resize(size)
        img.save(folder / f"{i:03d}.png")
    return root


def test_image_folder_is_read_split_and_scaled(tmp_path):
    task = load_image_folder(write_digits(tmp_path / "imgs"), seed=0)
    assert task.class_names == ("c0", "c1", "c2") and task.modality == "image"
    assert task.input_shape == (1, 8, 8)
    assert sum(len(s) for _, s in task.labelled_splits()) == 90
    assert 0.0 <= task.train.x.min() and task.train.x.max() <= 1.0
    for _, split in task.labelled_splits():
        assert set(split.y) == {0, 1, 2}  # stratified
    again = load_image_folder(tmp_path / "imgs", seed=0)
    assert again.digest() == task.digest()


def test_split_folders_are_respected_and_missing_val_is_carved(tmp_path):
    root = write_digits(tmp_path / "imgs", layout=lambda i: "test" if i % 5 == 0 else "train")
    task = load_image_folder(root)
    assert len(task.test) == 18 and len(task.train) + len(task.val) == 72
    assert "carved from train" in task.info["split rule"]


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_a_corrupt_image_is_named(tmp_path, damage):
    root = write_digits(tmp_path / "imgs")
    bad = root / "c1" / "bad.png"
    good = (root / "c1" / "001.png").read_bytes()
    bad.write_bytes(good[:30] if damage == "truncated" else np.random.default_rng(0).bytes(200))
    with pytest.raises(DataError) as error:
        load_image_folder(root)
    message = str(error.value)
    assert str(bad) in message and "\n" not in message and "remove or replace it" in message


def test_folder_problems_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        load_image_folder(tmp_path / "nope")
    root = write_digits(tmp_path / "imgs")
    (root / "c9").mkdir()
    with pytest.raises(DataError, match="c9: class folder holds no images"):
        load_image_folder(root)
    one = tmp_path / "one" / "only"
    one.mkdir(parents=True)
    Image.new("L", (8, 8)).save(one / "a.png")
    with pytest.raises(DataError, match="a classifier needs at least two"):
        load_image_folder(tmp_path / "one")


def test_mixed_sizes_are_refused_unless_a_size_is_given(tmp_path):
    root = write_digits(tmp_path / "imgs", size=(12, 12))
    with pytest.raises(DataError, match=r"differ in size .* set size = \[H, W\]"):
        load_image_folder(root)
    task = load_image_folder(root, size=(8, 8))
    assert task.input_shape == (1, 8, 8) and "bilinear" in task.info["resize"]


@pytest.fixture()
def wine_frame():
    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame["region"] = np.where(frame["alcohol"] > frame["alcohol"].median(), "north", "south")  # a group column
    frame.loc[::17, "magnesium"] = np.nan  # real tables have holes
    return frame


def test_table_pipeline_is_fitted_on_train_only(tmp_path, wine_frame):
    path = tmp_path / "wine.csv"
    wine_frame.to_csv(path, index=False)
    task = load_table(path, label="cultivar", groups=["region"], seed=0)
    assert task.class_names == ("0", "1", "2") and task.modality == "tabular"
    assert task.input_shape == (13,)  # region is a group, not a feature
    np.testing.assert_allclose(task.train.x.mean(0), 0, atol=1e-5)  # standardised with train statistics
    assert abs(task.test.x.mean(0)).max() > 1e-3  # ... which the test split does not exactly share
    assert set(task.test.groups["region"]) == {"north", "south"}
    rows = wine_frame.drop(columns=["cultivar", "region"]).iloc[:3]
    assert task.pipeline.transform(rows).shape == (3, 13)


def test_unknown_categories_go_to_the_other_column():
    from assay.data.tabular import TablePipeline

    train = pd.DataFrame({"colour": ["red", "blue", "red"], "size": [1.0, 2.0, np.nan]})
    pipe = TablePipeline(["colour", "size"]).fit(train)
    out = pipe.transform(pd.DataFrame({"colour": ["green", None], "size": [np.nan, 3.0]}))
    assert pipe.feature_names() == ["size", "colour=blue", "colour=red", "colour=<other>"]
    assert out[:, 3].tolist() == [1.0, 1.0]
    assert out[0, 0] == pytest.approx((1.5 - 1.5) / 0.5)  # missing -> train median (1.5), standardised


def test_parquet_equals_csv_and_missing_label_is_named(tmp_path, wine_frame):
    wine_frame.to_csv(tmp_path / "w.csv", index=False)
    wine_frame.to_parquet(tmp_path / "w.parquet")
    a = load_table(tmp_path / "w.csv", label="cultivar", groups=["region"])
    b = load_table(tmp_path / "w.parquet", label="cultivar", groups=["region"])
    np.testing.assert_allclose(a.train.x, b.train.x, atol=1e-6)
    with pytest.raises(DataError, match="no label column 'cultivr' \\(did you mean 'cultivar'\\?\\)"):
        load_table(tmp_path / "w.csv", label="cultivr")
    with pytest.raises(DataError, match="needs at least two"):
        load_table(_one_class(tmp_path, wine_frame), label="cultivar")


def _one_class(tmp_path, frame):
    path = tmp_path / "one.csv"
    frame.assign(cultivar=1).to_csv(path, index=False)
    return path


def test_npz_with_and_without_given_splits(tmp_path):
    digits = load_digits()
    np.savez(tmp_path / "a.npz", x=digits.images[:300, None], y=digits.target[:300])
    task = load_npz(tmp_path / "a.npz")
    assert task.modality == "image" and task.input_shape == (1, 8, 8)
    np.savez(tmp_path / "b.npz", x_train=digits.data[:200], y_train=digits.target[:200], x_test=digits.data[200:300], y_test=digits.target[200:300])
    task = load_npz(tmp_path / "b.npz")
    assert task.modality == "tabular" and len(task.test) == 100 and len(task.train) + len(task.val) == 200
    np.savez(tmp_path / "c.npz", inputs=digits.data[:10])
    with pytest.raises(DataError, match="needs arrays x and y"):
        load_npz(tmp_path / "c.npz")


def test_load_source_dispatches_and_names_unknown_keys(tmp_path, wine_frame):
    wine_frame.to_csv(tmp_path / "w.csv", index=False)
    task = load_source({"path": "w.csv", "label": "cultivar"}, base_dir=tmp_path, seed=0)
    assert task.modality == "tabular"
    with pytest.raises(SpecError, match="\\(table data\\): unknown key 'lable' \\(did you mean 'label'\\?\\)"):
        load_source({"path": "w.csv", "lable": "cultivar"}, base_dir=tmp_path, seed=0)


def test_bundled_tables_carry_groups_not_as_features():
    from assay.data.builtin import load_builtin

    hmda = load_builtin("hmda", seed=0)
    assert hmda.class_names == ("no", "yes") and set(hmda.test.groups["race"]) == {"African American", "not African American"}
    assert not any(name.startswith("race") for name in hmda.pipeline.feature_names())
    arrests = load_builtin("arrests", seed=0)
    assert sum(len(s) for _, s in arrests.labelled_splits()) == 5226


def test_views_are_deterministic_and_severity_hurts(cnn, digits):
    """Every corruption view is the same for a seed, and severity 5 costs the digits CNN more than severity 1."""
    import torch

    from assay.data.views import apply_view, corruption_views

    for modality_task in (digits,):
        for name in corruption_views(modality_task.modality, (1, 5)):
            a, b = apply_view(modality_task, "test", name, seed=3), apply_view(modality_task, "test", name, seed=3)
            assert np.array_equal(a.x, b.x), name
    x = {s: {} for s in (1, 5)}
    for kind in {n.split(":")[1].split("@")[0] for n in corruption_views("image")}:
        acc = [float((cnn.predict(torch.tensor(apply_view(digits, "test", f"corrupt:{kind}@{s}").x)).argmax(1).numpy() == digits.test.y).mean()) for s in (1, 5)]
        assert acc[1] < acc[0], (kind, acc)


@pytest.mark.parametrize("modality, x", [
    ("signal", np.random.default_rng(0).normal(size=(30, 1, 40)).astype(np.float32)),
    ("tabular", np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)),
    ("text", np.array(["The quick brown fox, jumps!", "over the lazy dog."] * 15, dtype=object)),
])
def test_other_modalities_views_are_deterministic(modality, x):
    from assay.data.task import Split, Task
    from assay.data.views import apply_view, corruption_views

    y = np.arange(30) % 2
    pipeline, meta = None, {}
    if modality == "text":  # token ids in x, the strings in meta["text"], the tokenizer on the task
        from assay.data.text import TextPipeline

        texts = x
        pipeline = TextPipeline("minilm", max_length=16)
        meta, x = {"text": texts}, pipeline.encode(texts)
    split = Split(x, y, meta=meta)
    task = Task("t", modality, ("a", "b"), split, split, split, pipeline=pipeline)
    for name in corruption_views(modality):
        a, b = apply_view(task, "test", name, seed=1), apply_view(task, "test", name, seed=1)
        assert np.array_equal(a.x, b.x), name
        assert len(a.x) == 30
    if modality == "text":
        assert list(apply_view(task, "test", "corrupt:typos@5", seed=1).meta["text"]) != list(texts)


def test_a_lazy_image_folder_gives_the_same_task_and_predictions(tmp_path, mlp):
    """lazy = true keeps paths, decodes batch by batch, and changes no number."""
    from assay.checks.predictions import PredictionCache
    from assay.data.lazy import LazyImages

    root = write_digits(tmp_path / "imgs")
    eager, lazy = load_image_folder(root), load_image_folder(root, lazy=True)
    assert isinstance(lazy.test.x, LazyImages) and lazy.input_shape == eager.input_shape
    np.testing.assert_array_equal(np.asarray(lazy.test.x), eager.test.x)
    np.testing.assert_array_equal(lazy.test.y, eager.test.y)
    assert lazy.digest() == load_image_folder(root, lazy=True).digest()
    # mlp was trained on 8x8 digits; run it over both and compare logits.
    a = PredictionCache(None, batch_size=7).get(mlp, lazy, split="test").logits
    b = PredictionCache(None).get(mlp, eager, split="test").logits
    np.testing.assert_allclose(a, b, atol=1e-5)
    (root / "c1" / "001.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="001.png: cannot read image"):
        load_image_folder(root, lazy=True)


def test_a_task_knows_where_it_came_from_and_how_to_give_it_groups(tmp_path, wine_frame):
    from assay.data.builtin import load_builtin

    digits = load_builtin("digits")
    assert digits.origin == "builtin" and "builtin task 'digits' has no group attribute" in digits.groups_hint()
    assert digits.without_classes(["9"]).origin == "builtin"
    wine_frame.to_csv(tmp_path / "w.csv", index=False)
    table = load_source({"path": "w.csv", "label": "cultivar"}, base_dir=tmp_path, seed=0)
    assert table.origin == "table" and 'add groups = ["<column>"] to [task]' in table.groups_hint()


def test_labels_per_class_is_checked_against_the_smallest_class():
    from assay.data.builtin import load_builtin
    from assay.errors import DataError

    digits = load_builtin("digits")
    name, n = digits.smallest_class()
    digits.check_labels_per_class(n)
    with pytest.raises(DataError, match=f"labels_per_class = {n + 1} but class '{name}' has only {n} training examples"):
        digits.with_labels_per_class(n + 1)
