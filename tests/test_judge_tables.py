"""A scikit-learn pipeline judged on a table task scores what it scores on the raw rows it was given."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import assay
from assay.data.builtin import _rdataset

LABEL, GROUP = "deny", "afam"


@pytest.fixture(scope="module")
def hmda():
    frame = _rdataset("AER", "HMDA").drop(columns=["rownames"])
    train, rest = train_test_split(frame, test_size=0.3, stratify=frame[LABEL], random_state=0)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest[LABEL], random_state=0)
    return train, val, test


def test_pipeline_accuracy_through_assay_equals_scikit_learn_on_the_raw_rows(hmda, tmp_path):
    train, val, test = hmda
    task = assay.Task.from_frame(train, test, val_df=val, label=LABEL, groups=[GROUP], name="hmda-rows")
    rows = train.drop(columns=[LABEL, GROUP])
    numeric = rows.select_dtypes("number").columns.tolist()
    encode = ColumnTransformer([("numeric", StandardScaler(), numeric),
                                ("categorical", OneHotEncoder(handle_unknown="ignore"), [c for c in rows.columns if c not in numeric])])
    pipe = Pipeline([("encode", encode), ("model", HistGradientBoostingClassifier(max_iter=100, random_state=0))]).fit(rows, train[LABEL])

    result = assay.judge({"pipe": pipe}, task, checks=["performance"], n_boot=200, out=tmp_path / "runs", progress=False)

    (evidence,) = [e for e in result.evidence if e.metric == "accuracy" and e.split == "test"]
    y_test = np.array([task.class_names.index(str(v)) for v in test[LABEL]])
    predicted = np.array([task.class_names.index(str(v)) for v in pipe.predict(test.drop(columns=[LABEL, GROUP]))])
    np.testing.assert_array_equal(task.test.y, y_test)  # the task keeps the test rows in the order given
    assert evidence.value == accuracy_score(y_test, predicted)  # exactly: the pipeline saw the raw rows, not float32 decodings
