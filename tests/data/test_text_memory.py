"""TextPipeline remembers the strings it encodes: recover gives them back exactly, and says which rows it had to decode.

Real tokenizer (MiniLM's uncased WordPiece, packaged, offline); the decoded
fallback is compared with transformers' own ``decode`` of the same ids.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from assay.data.task import Split, Task
from assay.data.text import TextFeed, TextPipeline, model_folder
from assay.data.views import apply_view

TEXTS = [
    "Hello World, THIS is GREAT!",  # an uncased tokenizer lowercases it
    "Crème brûlée at the Café",  # ... and strips its accents
    "a long text that goes on " * 8,  # longer than max_length: truncated
    "plain words",
]


@pytest.fixture(scope="module")
def pipeline():
    return TextPipeline("minilm", max_length=12)


def test_encoded_strings_come_back_exactly_where_decoding_would_lose_case_accents_and_length(pipeline):
    import transformers

    ids = pipeline.encode(TEXTS)
    found = pipeline.recover(ids)
    assert found.texts == TEXTS and found.exact.all() and found.decoded == 0
    assert pipeline.inverse(ids[::-1]) == TEXTS[::-1]  # any order, any batch

    forgetful = pickle.loads(pickle.dumps(pipeline))  # a pipeline loaded from a file keeps no strings
    assert forgetful.remembered == 0 and pipeline.remembered >= len(TEXTS)
    lost = forgetful.recover(ids)
    reference = transformers.AutoTokenizer.from_pretrained(str(model_folder("minilm")), local_files_only=True)
    assert lost.texts == [reference.decode(row, skip_special_tokens=True) for row in ids.tolist()]
    assert not lost.exact.any() and not lost.ambiguous.any() and lost.decoded == 4
    assert lost.texts[0] == "hello world, this is great!" and "brulee" in lost.texts[1] and len(lost.texts[2]) < len(TEXTS[2])
    with pytest.warns(UserWarning, match=r"4 of 4 texts are decoded from token ids.*4 never encoded by the task's tokenizer in this process"):
        forgetful.inverse(ids)
    assert copy.deepcopy(pipeline).recover(ids).texts == TEXTS  # a deep copy (a copied model's) shares the memory


def test_ids_two_texts_share_are_told_apart_by_their_batch_or_decoded_and_flagged(pipeline):
    clean = ["Good MORNING, friends!", "Call me at noon", "the end is near."]
    shouted = ["GOOD MORNING, FRIENDS!", "call me at noon", "THE END IS NEAR"]  # same ids as clean for the first two rows (uncased)
    a, b = pipeline.encode(clean), pipeline.encode(shouted)
    assert (a[:2] == b[:2]).all() and not (a[2] == b[2]).all()
    assert pipeline.recover(a).texts == clean and pipeline.recover(b).texts == shouted  # each batch is one call's rows
    alone = pipeline.recover(a[:1])  # no other row says which call it came from
    assert not alone.exact[0] and alone.ambiguous[0] and alone.texts == ["good morning, friends!"]
    assert "1 encoded from several texts it does not tell apart" in alone.why()
    mixed = pipeline.recover(np.stack([a[0], a[2], b[2]]))  # rows only one call or only the other made: the shared row cannot be placed
    assert mixed.exact.tolist() == [False, True, True] and mixed.ambiguous.tolist() == [True, False, False]
    assert mixed.texts[1:] == [clean[2], shouted[2]]

    twins = pipeline.encode(["Same Words", "same words"])  # one call, two strings, one encoding: never exact
    assert pipeline.recover(twins).ambiguous.all()


def test_a_text_feed_warns_once_and_counts_every_decoded_row(pipeline):
    ids = pipeline.encode(TEXTS)
    feed = TextFeed(pickle.loads(pickle.dumps(pipeline)), "cand")
    with pytest.warns(UserWarning, match=r"^cand: 4 of 4 texts are decoded"):
        feed(ids)
    feed(ids[:2])  # counted, not warned again
    assert (feed.rows, feed.decoded) == (6, 6)
    with pytest.raises(ValueError, match=r"3 texts but 4 id rows"):
        pipeline.remember(TEXTS[:3], ids)


def test_corrupted_text_views_are_remembered_so_the_corrupted_string_comes_back(pipeline):
    rng = np.random.default_rng(0)
    words = "the quick Brown fox jumps over a LAZY dog while Anna reads, and Bob writes!".split()
    texts = np.array([" ".join(rng.choice(words, size=rng.integers(4, 14))) for _ in range(60)], dtype=object)
    x, y = pipeline.encode(texts), np.arange(60) % 2

    def split(rows):
        return Split(x[rows], y[rows], meta={"text": texts[rows]})

    task = Task(name="words", modality="text", class_names=("a", "b"), train=split(slice(0, 20)), val=split(slice(20, 40)),
                test=split(slice(40, 60)), pipeline=pipeline)
    for name in ("corrupt:case_punctuation@5", "corrupt:typos@3", "ood:noise"):
        view = apply_view(task, "test", name, seed=0)
        found = pipeline.recover(view.x)
        assert found.exact.all() and found.texts == list(view.meta["text"]), name
    clean = pipeline.recover(task.test.x)  # still the clean strings, though upper/lower-cased copies now share many of their ids
    assert clean.exact.all() and clean.texts == list(task.test.meta["text"])


def test_a_text_task_from_arrays_of_strings_gives_its_strings_back_to_a_model_that_reads_text():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from assay.data.builtin import load_builtin
    from assay.errors import DataError
    from assay.models.foreign import as_candidate
    from assay.models.inputs import as_input

    tweets = load_builtin("tweets", seed=0)
    texts, labels = list(tweets.train.meta["text"][:240]), np.asarray(tweets.class_names)[tweets.train.y[:240]]
    task = Task.from_arrays(texts[:160], labels[:160], texts[160:], labels[160:], max_length=32)  # 1-D strings: text, val carved from train
    assert task.modality == "text" and task.input_shape == (32,) and task.info["tokenizer"]["max_length"] == 32
    for split in (task.train, task.val, task.test):
        assert task.pipeline.recover(split.x).texts == list(split.meta["text"])
    assert sorted([*task.train.meta["text"], *task.val.meta["text"]]) == sorted(texts[:160])

    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=300)).fit(texts[:160], labels[:160])
    got = as_candidate("tfidf", pipe, task).predict(as_input(task.test.x)).exp().numpy()
    np.testing.assert_allclose(got, pipe.predict_proba(texts[160:]), atol=1e-6)

    with pytest.raises(DataError, match=r"x_train has shape \(4, 2\) and dtype float64; for modality 'text' give one string per example"):
        Task.from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], ["a", "b"], [0, 1], modality="text")
    with pytest.raises(DataError, match=r"tokenizer and max_length apply to text"):
        Task.from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1], max_length=16)
