"""transfer: offline loading, the probe's embedding cache, LoRA's parameter share."""

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from assay.errors import ModelError
from assay.models.candidate import Candidate
from assay.models.inputs import as_input
from assay.recipes import RecipeContext, make_recipe
from assay.study import load_task


@pytest.fixture(scope="module")
def few_tweets():
    task = load_task({"builtin": "tweets", "labels_per_class": 8}, base_dir=Path("."), seed=0)
    return replace(task, test=task.test.subset(np.arange(60)))


def test_minilm_loads_with_no_network(monkeypatch, few_tweets, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    ctx = RecipeContext(task=few_tweets, work_dir=tmp_path / "p", progress=False, shared_dir=tmp_path / "shared")
    probe = make_recipe("transfer", {"epochs": 30}, "x").make("probe", ctx)
    assert probe.predict(as_input(few_tweets.test.x[:4])).shape == (4, 2)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_the_encoder_runs_once_for_several_probes(few_tweets, tmp_path, monkeypatch):
    from assay.models import pretrained

    calls = []
    original = pretrained.TextEncoder.forward
    monkeypatch.setattr(pretrained.TextEncoder, "forward", lambda self, ids: calls.append(len(ids)) or original(self, ids))
    shared = tmp_path / "shared"
    for i, lr in enumerate((1e-2, 3e-3, 1e-3)):
        ctx = RecipeContext(task=few_tweets, work_dir=tmp_path / f"p{i}", progress=False, shared_dir=shared)
        make_recipe("transfer", {"lr": lr, "epochs": 20}, "x").make(f"probe{i}", ctx)
    assert sum(calls) == len(few_tweets.train) + len(few_tweets.val)  # encoded once, read from the cache twice
    assert len(list(shared.glob("*.npy"))) == 2


def test_probe_saves_only_its_head_and_reloads_exactly(few_tweets, tmp_path):
    ctx = RecipeContext(task=few_tweets, work_dir=tmp_path / "p", progress=False, shared_dir=tmp_path / "s")
    probe = make_recipe("transfer", {"epochs": 20}, "x").make("probe", ctx)
    probe.save(tmp_path / "c")
    assert (tmp_path / "c" / "probe.safetensors").stat().st_size < 10_000  # the 22M-parameter encoder is re-read, not copied
    loaded = Candidate.load(tmp_path / "c", "probe")
    x = as_input(few_tweets.test.x[:8])
    assert torch.equal(loaded.predict(x), probe.predict(x))


def test_lora_trains_under_two_percent(few_tweets, tmp_path, capsys):
    ctx = RecipeContext(task=few_tweets, work_dir=tmp_path / "l", progress=True, shared_dir=tmp_path / "s")
    lora = make_recipe("transfer", {"strategy": "lora", "epochs": 1}, "x").make("lora", ctx)
    share = lora.training["trainable_parameters"] / lora.training["total_parameters"]
    assert share < 0.02
    assert "of 22,787,714 parameters" in capsys.readouterr().out
    assert "lora" not in repr(lora.model).lower()  # adapters merged: a plain model to save and serve


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"not a model folder \(missing tokenizer.json, model.safetensors or pytorch_model.bin\)"):
        from assay.models.pretrained import check_folder

        check_folder(tmp_path)
    study = tmp_path / "s.toml"
    study.write_text(f'[task]\nbuiltin = "tweets"\nlabels_per_class = 4\n[[recipe]]\nname = "p"\nkind = "transfer"\nencoder = "{tmp_path}"\n')
    out = subprocess.run([sys.executable, "-m", "assay", "run", str(study), "--out", str(tmp_path / "runs")], capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "not a model folder" in out.stderr and str(tmp_path) in out.stderr


def test_head_pruning_shrinks_minilm_and_reloads(few_tweets, tmp_path):
    ctx = RecipeContext(task=few_tweets, work_dir=tmp_path / "p", progress=False, shared_dir=tmp_path / "s")
    probe = make_recipe("transfer", {"epochs": 20}, "x").make("probe", ctx)
    ctx = replace(ctx, work_dir=tmp_path / "h", candidates={"probe": probe})
    pruned = make_recipe("prune", {"parent": "probe", "method": "heads", "sparsity": 0.5, "steps": 2, "epochs_per_step": 1}, "x").make("heads", ctx)
    kept = pruned.provenance.arch["kept_heads"]
    assert [len(k) for k in kept] == [6] * 6  # MiniLM: 6 layers of 12 heads, half kept
    attention = pruned.model.body.model.encoder.layer[0].attention
    assert attention.self.query.out_features == 6 * 32 and attention.output.dense.in_features == 6 * 32
    assert pruned.parameter_count() < probe.parameter_count() - 6 * 4 * 384 * 192  # q, k, v and output lose half their weights in every layer
    pruned.save(tmp_path / "c")
    loaded = Candidate.load(tmp_path / "c", "heads")
    x = as_input(few_tweets.test.x[:8])
    assert torch.equal(loaded.predict(x), pruned.predict(x))


def test_probes_on_one_frozen_encoder_share_its_pass_in_the_prediction_cache(few_tweets, tmp_path, monkeypatch):
    """Two linear probes on frozen MiniLM: the encoder runs once per (split, view) for both; each head gives its model's own logits."""
    from assay.checks.predictions import PredictionCache
    from assay.models import pretrained

    probes = [make_recipe("transfer", {"lr": lr, "epochs": 10}, "x").make(
        f"probe{i}", RecipeContext(task=few_tweets, work_dir=tmp_path / f"p{i}", progress=False, shared_dir=tmp_path / "shared"))
        for i, lr in enumerate((1e-2, 1e-3))]
    calls = []
    original = pretrained.TextEncoder.forward
    monkeypatch.setattr(pretrained.TextEncoder, "forward", lambda self, ids: calls.append(len(ids)) or original(self, ids))
    cache = PredictionCache(tmp_path / "predictions")
    got = [cache.get(p, few_tweets, split="test") for p in probes]
    assert sum(calls) == len(few_tweets.test)  # one encoder pass for the two probes
    for probe, predictions in zip(probes, got):
        np.testing.assert_allclose(predictions.logits, probe.predict(as_input(few_tweets.test.x)).numpy(), atol=1e-5)
    assert not np.allclose(got[0].logits, got[1].logits)  # the heads differ, and so do their logits
