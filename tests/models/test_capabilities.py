"""Candidates declare what they can do; checks and the prediction cache read it instead of trying and catching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.models.candidate import Candidate, Provenance
from assay.models.capabilities import capabilities_of
from assay.recipes import RecipeContext, make_recipe


def _derived(kind: str, parent: Candidate, digits, tmp_path, **options) -> Candidate:
    recipe = make_recipe(kind, {"parent": parent.name, **options}, "test")
    return recipe.make(f"{parent.name}-{kind}", RecipeContext(task=digits, work_dir=tmp_path, candidates={parent.name: parent}, progress=False))


def test_plain_models_can_do_everything_but_attention(mlp):
    caps = mlp.capabilities
    assert (caps.differentiable, caps.features, caps.attention, caps.devices) == (True, True, False, ("cpu", "cuda"))
    assert caps.lacks("features") is None and "attention" in caps.lacks("attention")


def test_a_transformer_returns_attention():
    from assay.models import zoo

    model = zoo.build("transformer", input_shape=(16,), num_classes=3, vocab_size=50)
    assert capabilities_of(model).attention


def test_int8_and_onnx_are_cpu_only_and_not_differentiable(mlp, digits, tmp_path):
    int8 = _derived("quantize", mlp, digits, tmp_path / "q")
    onnx = _derived("export", mlp, digits, tmp_path / "o")
    for child in (int8, onnx):
        assert child.capabilities.devices == ("cpu",) and not child.capabilities.differentiable, child.provenance.transforms
        assert child.capabilities.features
    half = _derived("quantize", mlp, digits, tmp_path / "h", mode="fp16")
    assert half.capabilities.devices == ("cpu", "cuda") and half.capabilities.differentiable  # a half-precision child may run on a GPU now


def test_trees_have_features_but_no_gradients(digits, tmp_path):
    trees = make_recipe("sklearn", {"estimator": "gradient_boosting", "max_iter": 5}, "test").make(
        "gbt", RecipeContext(task=digits, work_dir=tmp_path, progress=False))
    caps = trees.capabilities
    assert caps.features and not caps.differentiable and "tree ensemble" in caps.lacks("differentiable")
    x = torch.tensor(digits.test.x[:4], dtype=torch.float32, requires_grad=True)
    assert not trees.model(x).requires_grad  # indeed: no path from the input to the logits carries a gradient


def _without_features(candidate: Candidate) -> Candidate:
    """The candidate's ONNX export with the 'features' output removed (as another tool's graph would be)."""
    import onnx

    from assay.models.exported import OnnxClassifier

    proto = onnx.load_model_from_string(candidate.model.graph_bytes())
    keep = [o for o in proto.graph.output if o.name != "features"]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    model = OnnxClassifier(proto.SerializeToString())
    return Candidate("bare-onnx", model, Provenance(**{**candidate.provenance.__dict__, "transforms": ("onnx_fp32",)}))


def test_a_graph_without_features_gets_logit_scores_and_a_stated_skip(mlp, digits, tmp_path):
    from assay.checks.base import CheckContext, make_check
    from assay.checks.predictions import PredictionCache
    from assay.evidence import SKIPPED

    bare = _without_features(_derived("export", mlp, digits, tmp_path / "o"))
    assert bare.capabilities.lacks("features")
    cache = PredictionCache(tmp_path / "predictions")
    assert cache.get(bare, digits, embeddings=True).embeddings is None  # asked for, not raised: logits only
    context = CheckContext(task=digits, predictions=cache, seed=0, n_boot=100, candidates={"bare-onnx": bare})
    records = make_check("ood", {}).run(bare, context)
    auroc = next(e for e in records if e.metric == "far_ood_auroc")
    assert set(next(iter(auroc.details["table"].values()))) == {"msp", "max_logit", "energy"}
    assert "not measured" in auroc.details["notes"][0] and 0 <= auroc.value <= 1
    (skipped,) = make_check("ood", {"score": "knn"}).run(bare, context)
    assert skipped.metric == SKIPPED and "penultimate features" in skipped.details["reason"]
    with_features = make_check("ood", {"score": "knn"}).run(mlp, CheckContext(task=digits, predictions=cache, seed=0, n_boot=100))
    assert all(e.metric != SKIPPED for e in with_features)
    assert np.isfinite([e.value for e in with_features]).all()
