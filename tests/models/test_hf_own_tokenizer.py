"""Text models that tokenize for themselves: a Hugging Face folder with its own tokenizer, and black boxes given strings.

Real data (the bundled tweets task, MiniLM's uncased tokenizer), a tiny
randomly initialised BERT classifier saved with ``save_pretrained`` beside a
cased WordPiece tokenizer trained here on the task's training texts, and a
scikit-learn TF-IDF pipeline. Every number is compared with what
transformers or scikit-learn give on the raw strings.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import assay
from assay.data.builtin import load_builtin
from assay.data.task import Split
from assay.data.views import apply_view
from assay.errors import ModelError
from assay.models.foreign import as_candidate
from assay.models.inputs import as_input
from assay.recipes import RecipeContext, make_recipe

LABELS = ["iPhone", "Android"]  # the task's classes in another order: logits must be reordered


@pytest.fixture(scope="module")
def tweets():
    """The tweets task cut small: 48 train, 32 val, 60 test rows (the pipeline remembers every tweet it encoded)."""
    task = load_builtin("tweets", seed=0)
    return task, replace(task, train=task.train.subset(np.arange(48)), val=task.val.subset(np.arange(32)), test=task.test.subset(np.arange(60)))


def save_own_folder(folder: Path, texts: list[str]) -> tuple[torch.nn.Module, object]:
    """A tiny BERT classifier with a cased WordPiece tokenizer of its own (300 tokens, trained on ``texts``), saved as transformers saves one."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)  # cased: "GREAT" and "great" are other tokens
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.decoder = decoders.WordPiece()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                                     sep_token="[SEP]", mask_token="[MASK]", model_max_length=48)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=64, num_labels=2, initializer_range=0.5,  # wide weights: logits that vary with the text
                                     id2label=dict(enumerate(LABELS)), label2id={c: i for i, c in enumerate(LABELS)})
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


@pytest.fixture(scope="module")
def folder(tweets, tmp_path_factory):
    full, _ = tweets
    path = tmp_path_factory.mktemp("hf") / "own"
    model, tokenizer = save_own_folder(path, [str(t) for t in full.train.meta["text"]])
    return path, model, tokenizer


def direct_logits(model, tokenizer, texts) -> torch.Tensor:
    """transformers on the raw strings, in the task's class order (Android, iPhone)."""
    with torch.no_grad():
        logits = model(**tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")).logits
    return logits[:, [LABELS.index("Android"), LABELS.index("iPhone")]]


def load(path: Path, task, work: Path):
    recipe = make_recipe("load", {"path": path}, "x")
    recipe.check_task(task, "[[recipe]] 'hf'")
    return recipe.make("hf", RecipeContext(task=task, work_dir=work, progress=False))


def test_a_folder_with_its_own_tokenizer_gets_the_logits_transformers_gives_on_the_raw_strings(tweets, folder, tmp_path):
    _, task = tweets
    path, model, tokenizer = folder
    candidate = load(path, task, tmp_path)
    texts = [str(t) for t in task.test.meta["text"]]
    got = candidate.predict(as_input(task.test.x))
    torch.testing.assert_close(got, direct_logits(model, tokenizer, texts), atol=1e-5, rtol=0)
    decoded = direct_logits(model, tokenizer, task.pipeline._tok.decode_batch(task.test.x.tolist(), skip_special_tokens=True))
    assert (decoded - got).abs().max() > 1e-3  # ids decoded back (lowercased, cut at 64 tokens) would have given other logits

    shouted = apply_view(task, "test", "corrupt:case_punctuation@5", seed=0)  # case changes the task's uncased ids do not see
    shared = (shouted.x == task.test.x).all(axis=1) & (shouted.meta["text"] != task.test.meta["text"])
    assert shared.sum() >= 2  # rows whose corrupted string has the clean one's ids (3 here)
    torch.testing.assert_close(candidate.predict(as_input(shouted.x)), direct_logits(model, tokenizer, shouted.meta["text"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(candidate.predict(as_input(task.test.x)), got, atol=1e-5, rtol=0)  # the clean rows still read the clean strings

    arch = candidate.provenance.arch
    assert arch["tokenizer"].startswith("its own: re-tokenizes") and len(arch["tokenizer_sha256"]) == 64
    assert any(n.startswith("re-tokenizes") for n in candidate.describe()["notes"])
    assert not candidate.capabilities.differentiable and "re-tokenizes" in candidate.capabilities.lacks("differentiable")


def test_a_folder_is_refused_when_the_tasks_texts_cannot_be_recovered_and_warned_when_some_are_ambiguous(tweets, folder, tmp_path):
    _, task = tweets
    path, _, _ = folder
    forgetful = replace(task, pipeline=pickle.loads(pickle.dumps(task.pipeline)))  # a pipeline read back from a file keeps no strings
    with pytest.raises(ModelError, match=r"^\[\[recipe\]\] 'hf': .*own: its tokenizer is not the task's, so it is given the task's texts, "
                                         r"but 60 of 60 test texts were not encoded by the task's tokenizer in this process"):
        make_recipe("load", {"path": path}, "x").check_task(forgetful, "[[recipe]] 'hf'")

    twins = ["Crooked Hillary LOSES again", "crooked hillary loses again"]  # one encoding under the task's uncased tokenizer
    test = Split(task.pipeline.encode(twins), np.array([0, 1]), meta={"text": np.array(twins, dtype=object)})
    with pytest.warns(UserWarning) as warned:
        candidate = load(path, replace(task, test=test), tmp_path)
    said = [str(w.message) for w in warned]
    assert any(m.endswith("own: test: 2 of 2 texts are decoded from token ids, not the strings encoded: 2 encoded from several texts it does not "
                          "tell apart (case, accents, words past max_length); decoding loses what the tokenizer dropped") for m in said)  # on loading
    assert any(m.endswith("later batches are counted, not warned") for m in said)  # and on its first batch
    logits = candidate.predict(as_input(test.x))
    assert logits.shape == (2, 2) and torch.equal(logits[0], logits[1])  # both rows read the one decoded string


def test_a_black_box_on_a_text_task_is_given_the_tasks_strings(tweets):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    full, task = tweets
    texts = [str(t) for t in full.train.meta["text"]]
    pipe = make_pipeline(TfidfVectorizer(lowercase=False), LogisticRegression(max_iter=500)).fit(texts, np.asarray(full.class_names)[full.train.y])
    seen: list[object] = []

    def fn(batch):
        seen.append(batch)
        return pipe.predict_proba(batch)

    for name, model in (("tfidf", pipe), ("fn", fn)):
        candidate = as_candidate(name, model, task)
        got = candidate.predict(as_input(task.test.x)).exp().numpy()
        np.testing.assert_allclose(got, pipe.predict_proba(list(task.test.meta["text"])), atol=1e-6)
    assert all(isinstance(b, list) for b in seen) and seen[-1] == list(task.test.meta["text"])


def test_judge_on_a_text_task_with_a_folder_of_its_own_and_a_black_box_gives_evidence(tweets, folder, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline

    full, task = tweets
    path, model, tokenizer = folder
    classes = np.asarray(task.class_names)
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500)).fit([str(t) for t in full.train.meta["text"]], classes[full.train.y])
    result = assay.judge({"tfidf": pipe}, task, recipes=[{"name": "hf", "kind": "load", "path": str(path)}],
                         checks={"performance": {}, "robustness": {"severities": [5]}}, out=tmp_path / "runs", n_boot=100, progress=False)
    table = result.table()
    accuracy = table[table.metric == "accuracy"].set_index("candidate")["value"]
    texts = list(task.test.meta["text"])
    assert accuracy["tfidf"] == pytest.approx(accuracy_score(classes[task.test.y], pipe.predict(texts)))
    assert accuracy["hf"] == pytest.approx(float((direct_logits(model, tokenizer, texts).argmax(1).numpy() == task.test.y).mean()))
    robust = table[(table.check == "robustness") & table.value.notna()]
    assert {"hf", "tfidf"} <= set(robust.candidate)
    saved = next(c for c in result.candidates if c["name"] == "hf")  # the run folder's description says it re-tokenizes
    assert saved["arch"]["tokenizer"].startswith("its own") and any(n.startswith("re-tokenizes") for n in saved["notes"])
