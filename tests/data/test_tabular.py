"""TablePipeline.inverse: encoded features back to the user's raw rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assay.data.builtin import _rdataset, load_builtin
from assay.data.tabular import TablePipeline


def test_hmda_rows_round_trip_through_the_pipeline():
    task = load_builtin("hmda", seed=0)
    raw = _rdataset("AER", "HMDA").drop(columns=["rownames"])
    columns = task.pipeline.columns
    for split in (task.train, task.test):
        back = task.pipeline.inverse(split.x)
        assert list(back.columns) == columns and len(back) == len(split)
        assert task.pipeline.transform(back).tobytes() == split.x.tobytes()  # decode, encode: the same features
    back = task.pipeline.inverse(task.pipeline.transform(raw))
    for column in columns:
        assert back[column].dtype == raw[column].dtype, column
        if column in task.pipeline.numeric:
            np.testing.assert_allclose(back[column], raw[column], rtol=1e-6, atol=1e-6)  # float32 features
        else:
            assert back[column].tolist() == raw[column].tolist()
    np.testing.assert_array_equal(back["chist"], raw["chist"])  # whole numbers come back exact


def test_missing_unseen_booleans_and_whole_floats():
    train = pd.DataFrame({
        "count": [1.0, 2.0, np.nan, 4.0, 5.0],      # whole numbers, one missing: stays float, rounded
        "ratio": [0.5, 0.25, 0.125, 1.0, 2.0],
        "flag": [True, False, True, True, False],
        "colour": ["red", "blue", None, "red", "green"],
        "n": pd.array([1, 2, None, 4, 5], dtype="Int64"),
    })
    pipeline = TablePipeline(list(train.columns)).fit(train)
    rows = pd.DataFrame({"count": [3.0, np.nan], "ratio": [0.75, 0.5], "flag": [False, True], "colour": ["purple", "blue"],
                         "n": pd.array([3, None], dtype="Int64")})
    back = pipeline.inverse(pipeline.transform(rows))
    assert back["count"].tolist() == [3.0, 3.0]  # a missing value comes back as the train median (3)
    np.testing.assert_allclose(back["ratio"], [0.75, 0.5], rtol=1e-6)
    assert back["flag"].dtype == bool and back["flag"].tolist() == [False, True]
    assert pd.isna(back["colour"].iloc[0]) and back["colour"].iloc[1] == "blue"  # unseen -> <other> -> missing
    assert str(back["n"].dtype) == "Int64" and back["n"].tolist() == [3, 3]


def test_inverse_refuses_features_of_another_width():
    pipeline = TablePipeline(["a"]).fit(pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(ValueError, match=r"expected \(N, 1\)"):
        pipeline.inverse(np.zeros((2, 3)))


def test_remembered_rows_come_back_exactly_and_others_are_decoded():
    rows = pd.DataFrame({"pirat": [0.45, 0.3, 0.123456789, 0.45], "kind": ["a", "b", "a", "b"]})
    pipeline = TablePipeline(["pirat", "kind"]).fit(rows)
    x = pipeline.transform(rows)
    assert pipeline.inverse(x)["pirat"].tolist() != rows["pirat"].tolist()  # float32 decoding moves 0.45
    pipeline.remember(rows, x)

    pd.testing.assert_frame_equal(pipeline.inverse(x[[2, 0]]), rows.iloc[[2, 0]].reset_index(drop=True))
    corrupted = x.copy()
    corrupted[1, 0] += 1.0  # a row never seen: decoded; the others stay exact, in the order asked
    back = pipeline.inverse(corrupted)
    assert back["pirat"][0] == 0.45 and back["pirat"][2] == 0.123456789 and back["pirat"][3] == 0.45
    np.testing.assert_allclose(back["pirat"][1], pipeline.inverse(corrupted[[1]])["pirat"][0])
    assert back["kind"].tolist() == ["a", "b", "a", "b"] and back["pirat"].dtype == rows["pirat"].dtype


def test_a_pickled_pipeline_forgets_its_rows_and_decodes():
    import pickle

    rows = pd.DataFrame({"pirat": [0.45, 0.3, 0.7]})
    pipeline = TablePipeline(["pirat"]).fit(rows)
    x = pipeline.transform(rows)
    pipeline.remember(rows, x)
    again = pickle.loads(pickle.dumps(pipeline))
    assert again._seen is None and pipeline._seen is not None
    np.testing.assert_allclose(again.inverse(x)["pirat"], rows["pirat"], rtol=1e-6)
    assert again.describe() == pipeline.describe()


def test_table_tasks_remember_their_rows():
    task = load_builtin("hmda", seed=0)
    raw = _rdataset("AER", "HMDA").drop(columns=["rownames"])
    back = task.pipeline.inverse(task.pipeline.transform(raw))
    pd.testing.assert_frame_equal(back, raw[task.pipeline.columns].reset_index(drop=True))
