"""The explain check on real small models: Grad-CAM by hand, tables summed back, a planted shortcut found, the sanity check separating."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from assay.checks import attribution_math as am
from assay.checks import explainers as ex
from assay.checks.base import SKIPPED, CheckContext
from assay.checks.explain import Explain
from assay.checks.predictions import PredictionCache
from assay.data.task import Split

pytest.importorskip("captum")


def train(task, arch, work, **options):
    from assay.recipes import RecipeContext, make_recipe

    return make_recipe("train", {"arch": arch, **options}, "test").make(arch, RecipeContext(task=task, work_dir=work, progress=False))


def _records(evidence):
    return {e.metric: e for e in evidence if e.metric != SKIPPED}


def test_grad_cam_equals_a_hand_computation_on_a_tiny_cnn(digits):
    from assay.models.zoo import build

    torch.manual_seed(0)
    model = build("cnn", input_shape=(1, 8, 8), num_classes=10, channels=(4, 6)).eval()
    x = torch.as_tensor(digits.test.x[:5])
    target = torch.tensor([0, 3, 5, 7, 9])
    # By hand: run the body up to the last ReLU, keep its output A, finish the forward pass, differentiate.
    layers = list(model.body)
    last = max(i for i, m in enumerate(layers) if isinstance(m, nn.ReLU))
    with torch.enable_grad():
        a = nn.Sequential(*layers[: last + 1])(x)
        a.retain_grad()
        logits = model.head(nn.Sequential(*layers[last + 1 :])(a))
        logits.gather(1, target[:, None]).sum().backward()
    weights = a.grad.mean(dim=(2, 3), keepdim=True)
    by_hand = torch.relu((weights * a).sum(1, keepdim=True)).detach()  # (N, 1, h, w)
    up = nn.functional.interpolate(by_hand, size=(8, 8), mode="bilinear", align_corners=False).reshape(5, -1).double().numpy()
    setup = _setup(digits, digits.test.x[:5])
    ours = ex.grad_cam(model, x, target, setup)
    assert np.allclose(ours, up, atol=1e-6)
    assert ex.cam_layer(model) is layers[last]


def _setup(task, x):
    names, groups, base = ex.feature_space(task, np.asarray(x))
    return ex.Setup(names=names, groups=groups, shape=tuple(x.shape[1:]), tokens=task.modality == "text", baseline=base,
                    references=np.asarray(task.train.x[:4]), n_steps=16, samples=4)


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    """The bundled HMDA loans table (numeric and one-hot columns) and an MLP trained on it."""
    from assay.data.builtin import load_builtin

    task = load_builtin("hmda", seed=0)
    return task, train(task, "mlp", tmp_path_factory.mktemp("hmda"), epochs=3)


def test_table_attributions_sum_back_to_the_original_columns(loans):
    task, model = loans
    pipe = task.pipeline
    x = np.asarray(task.test.x[:20])
    setup = _setup(task, x)
    assert setup.names == [c for c in pipe.columns]  # the user's columns, in their order
    target = torch.as_tensor(model.predict(torch.as_tensor(x)).argmax(1))
    from assay.models.gradients import integrated_gradients

    encoded = integrated_gradients(
        model.model, torch.as_tensor(x), target, torch.as_tensor(setup.baseline), n_steps=16).double().numpy()
    ours = setup.features(encoded)
    # Independently: each encoded column belongs to the column its name starts with ("race=white" -> "race").
    owner = [name.split("=")[0] for name in pipe.feature_names()]
    for j, column in enumerate(setup.names):
        cols = [i for i, o in enumerate(owner) if o == column]
        assert np.array_equal(ours[:, j], encoded[:, cols].sum(axis=1)), column
    assert np.allclose(ours.sum(1), encoded.sum(1), atol=1e-12)
    assert any(len(g) > 1 for g in setup.groups)  # a one-hot block was summed
    # The baseline is the training mean row: zero in standardised units, the categories' frequencies in one-hot columns.
    assert np.allclose(setup.baseline[0], task.train.x.mean(0), atol=1e-6)


def test_a_table_is_explained_per_original_column_with_kernel_shap_and_its_examples_read_as_the_user_wrote_them(loans):
    """Per-class maps and examples on a table: one value per original column; the example rows come back from TablePipeline.inverse."""
    task, model = loans
    ctx = CheckContext(task=task, predictions=PredictionCache(None), n_boot=100)
    check = Explain(n_examples=16, methods=["integrated_gradients", "kernel_shap"], costly_methods="all", cascade_steps=1)
    gain = _records(check.run(model, ctx))["faithfulness_gain"]
    columns = list(task.pipeline.columns)
    assert set(gain.details["methods"]) == {"integrated_gradients", "kernel_shap"}  # 'all': KernelSHAP for a model with gradients too
    assert all(len(v) == len(columns) for v in gain.details["shortcuts"]["class_mean_abs"].values())
    examples = gain.details["examples"]
    assert examples and {e["role"] for e in examples} <= {"most confident right", "most confident wrong"}
    for e in examples:
        raw = task.pipeline.inverse(np.asarray(task.test.x[[e["index"]]]))
        assert e["input"]["columns"] == columns and e["input"]["values"] == [str(v) for v in raw[columns].iloc[0].tolist()]
        assert len(e["attribution"]) == len(columns)


def _patched(split: Split, seed: int) -> Split:
    """The split's digits, labelled by a coin flip that a bright 2x2 patch in the top-left corner (where digits have no ink) reveals."""
    on = np.random.default_rng(seed).random(len(split)) < 0.5
    x = np.array(split.x, copy=True)
    x[on, 0, :2, :2] = 1.0
    return Split(x, on.astype(np.int64))


PATCH = [0, 1, 8, 9]  # its four pixels, as positions of the 8x8 map


@pytest.fixture(scope="module")
def shortcut(digits, tmp_path_factory):
    """Only the patch tells the label: a CNN trained on it must learn the patch."""
    splits = {s: _patched(getattr(digits, s), i) for i, s in enumerate(("train", "val", "test"))}
    task = replace(digits, class_names=("no patch", "patch"), **splits)
    return task, train(task, "cnn", tmp_path_factory.mktemp("shortcut"), epochs=6, arch_options={"channels": [16, 32]})


def test_the_shortcut_finder_surfaces_a_planted_patch_and_not_on_a_clean_model(shortcut, digits, cnn):
    task, model = shortcut
    check = Explain(n_examples=64, methods=["saliency", "integrated_gradients", "ablation"], cascade_steps=1)
    found = {}
    for name, (t, m) in {"shortcut": (task, model), "clean": (digits, cnn)}.items():
        ctx = CheckContext(task=t, predictions=PredictionCache(None), n_boot=100)
        gain = _records(check.run(m, ctx))["faithfulness_gain"]
        importance = np.asarray(gain.details["shortcuts"]["mean_abs"])
        found[name] = am.top_k_recall(importance, PATCH, k=8)
    print(f"planted-patch top-8 recall: {found}")
    assert found["shortcut"] >= 0.9, found
    assert found["clean"] < 0.5, found


def test_the_randomisation_check_separates_real_methods_from_a_model_independent_one(cnn, context, monkeypatch):
    """Saliency and IG of the trained CNN decorrelate from a randomised copy's; 'the input itself' does not and is flagged."""
    monkeypatch.setitem(ex.REGISTRY, "identity", lambda model, x, target, setup: setup.features(x.numpy()))
    check = Explain(n_examples=48, methods=["saliency", "integrated_gradients", "identity"])
    sanity = _records(check.run(cnn, context))["randomisation_correlation"]
    per = sanity.details["methods"]
    print("randomisation correlation:", {m: round(r["value"], 3) for m, r in per.items()})
    assert per["identity"]["value"] == pytest.approx(1.0) and not per["identity"]["passes"]
    assert sanity.details["failing"] == ["identity"]
    for method in ("saliency", "integrated_gradients"):
        assert per[method]["passes"] and per[method]["value"] < 0.5, (method, per[method]["value"])
        assert len(per[method]["cascade"]) == 3


def test_a_candidate_without_gradients_gets_the_gradient_free_methods_its_reason_and_drift_against_its_parent(cnn, mlp, digits, context, tmp_path):
    from assay.recipes import RecipeContext, make_recipe

    child = make_recipe("quantize", {"parent": "mlp"}, "x").make(
        "mlp-int8", RecipeContext(task=digits, work_dir=tmp_path, candidates={"mlp": mlp}, progress=False))
    assert not child.capabilities.differentiable
    context.candidates = {"cnn": cnn, "mlp": mlp, "mlp-int8": child}
    records = _records(Explain(n_examples=32).run(child, context))
    gain = records["faithfulness_gain"]
    assert set(gain.details["methods"]) == {"ablation", "kernel_shap"}
    assert "gradient methods not run" in gain.details["notes"][0]
    assert gain.details["not_applicable"]["integrated_gradients"] == "needs gradients"
    assert "randomisation_correlation" not in records and "ig_completeness_error" not in records
    drift = records["explanation_agreement"]
    assert drift.reference == "mlp" and drift.details["method"] == "ablation"
    assert drift.value > 0.8  # int8 weights barely move what the MLP looks at
    assert gain.details["methods"]["ablation"]["verdict"] == "better than random"


def test_deletion_and_insertion_math():
    fractions = np.linspace(0, 1, 5)
    a = np.array([[0.1, 0.9, 0.5, 0.0]])
    eligible = np.array([[True, True, True, False]])
    masks = am.removal_masks(a, eligible, fractions)
    # 3 eligible features: 0, 1, 2, 2, 3 removed at the five steps, the most attributed (index 1) first.
    assert masks.sum(-1).tolist() == [[0, 1, 2, 2, 3]]
    assert masks[0, 1].tolist() == [False, True, False, False] and not masks[0, :, 3].any()
    assert am.curve_auc(np.array([1.0, 1.0, 1.0, 1.0, 1.0]), fractions) == pytest.approx(1.0)
    assert am.curve_auc(np.array([1.0, 0.0, 0.0, 0.0, 0.0]), fractions) == pytest.approx(0.125)
    r = am.spearman_rows(np.array([[1, 2, 3.0], [1, 1, 1.0]]), np.array([[3, 2, 1.0], [1, 2, 3.0]]))
    assert r.tolist() == [-1.0, 0.0]
    assert am.top_k_overlap(np.array([[3, 2, 1.0]]), np.array([[3, 1, 2.0]]), 2).tolist() == [0.5]
    # With a mask, only the features that count are ranked (padding's ties at zero would agree in any model).
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.random((3, 9)), rng.random((3, 9))
    mask = rng.random((3, 9)) < 0.7
    expected = [spearmanr(a[i, mask[i]], b[i, mask[i]]).statistic for i in range(3)]
    assert np.allclose(am.spearman_rows(a, b, mask), expected, atol=1e-12)


def test_attention_rollout_of_identity_attention_is_the_identity():
    eye = np.eye(4)[None, None].repeat(2, 0).repeat(3, 1)  # (N=2, heads=3, T=4, T=4)
    assert np.allclose(am.attention_rollout([eye, eye]), np.eye(4))
    uniform = np.full((1, 1, 2, 2), 0.5)
    # One block: 0.5 * uniform + 0.5 * I = [[0.75, 0.25], [0.25, 0.75]].
    assert np.allclose(am.attention_rollout([uniform])[0], [[0.75, 0.25], [0.25, 0.75]])
