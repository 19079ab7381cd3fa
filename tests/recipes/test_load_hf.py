"""kind = "load" of a local Hugging Face folder for a text task: read offline, given the task's ids, classes mapped by name."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from assay.data.text import model_folder
from assay.errors import ModelError
from assay.models.inputs import as_input
from assay.recipes import RecipeContext, make_recipe
from assay.study import load_task


@pytest.fixture(scope="module")
def few_tweets():
    task = load_task({"builtin": "tweets", "labels_per_class": 8}, base_dir=Path("."), seed=0)
    return replace(task, test=task.test.subset(np.arange(40)))


def save_folder(folder: Path, labels: list[str], tokenizer: str | Path = "minilm") -> torch.nn.Module:
    """A tiny randomly initialised BERT classifier and a tokenizer, saved as transformers saves a fine-tuned model."""
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=128, num_labels=len(labels),
                                     id2label=dict(enumerate(labels)), label2id={c: i for i, c in enumerate(labels)})
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(str(model_folder(tokenizer)), local_files_only=True).save_pretrained(folder)
    return model


def test_a_folder_is_judged_offline_on_the_tasks_ids_in_the_tasks_class_order(few_tweets, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    model = save_folder(tmp_path / "hf", ["iPhone", "Android"])  # the task's classes, in another order
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    recipe = make_recipe("load", {"path": tmp_path / "hf"}, "x")
    recipe.check_task(few_tweets, "[[recipe]] 'hf'")
    candidate = recipe.make("hf", RecipeContext(task=few_tweets, work_dir=tmp_path / "w", progress=False))

    ids = torch.as_tensor(few_tweets.test.x[:6])
    with torch.no_grad():
        own = model(input_ids=ids, attention_mask=(ids != few_tweets.pipeline.pad_id).long()).logits  # (6, 2): iPhone, Android
    got = candidate.predict(as_input(few_tweets.test.x[:6]))
    assert few_tweets.class_names == ("Android", "iPhone")
    torch.testing.assert_close(got, own[:, [1, 0]])


def test_labels_that_are_not_the_tasks_classes_are_refused_naming_both(few_tweets, tmp_path):
    save_folder(tmp_path / "hf", ["LABEL_0", "LABEL_1"])
    with pytest.raises(ModelError, match=r"\['LABEL_0', 'LABEL_1'\].*\['Android', 'iPhone'\]"):
        make_recipe("load", {"path": tmp_path / "hf"}, "x").check_task(few_tweets, "[[recipe]] 'hf'")


def test_a_folder_for_a_table_task_is_refused(digits, tmp_path):
    save_folder(tmp_path / "hf", [str(i) for i in range(10)])
    with pytest.raises(ModelError, match="text tasks"):
        make_recipe("load", {"path": tmp_path / "hf"}, "x").check_task(digits, "[[recipe]] 'hf'")
