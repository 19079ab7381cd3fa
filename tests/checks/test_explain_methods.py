"""KernelSHAP, infidelity and max-sensitivity against Captum called directly; the passes the check shares; its per-class maps and examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.checks import attribution_math as am
from assay.checks import attribution_metrics as yeh
from assay.checks import explainers as ex
from assay.checks.base import SKIPPED
from assay.checks.explain import Explain

captum_attr = pytest.importorskip("captum.attr")
captum_metrics = pytest.importorskip("captum.metrics")


def _setup(task, x: np.ndarray, **options) -> ex.Setup:
    names, groups, base = ex.feature_space(task, x)
    return ex.Setup(names=names, groups=groups, shape=tuple(x.shape[1:]), tokens=task.modality == "text", baseline=base,
                    references=x[:4], seed=5, **options)


@pytest.fixture(scope="module")
def sample(digits, cnn):
    x = np.asarray(digits.test.x[:12])
    return x, cnn.predict(torch.as_tensor(x)).argmax(1).numpy()


def _captum_kernel_shap(forward, x, target, setup: ex.Setup) -> np.ndarray:
    """Captum's KernelShap on the model itself, one example at a time, with the check's masks, baselines, samples and seeds."""
    out = []
    for i in range(len(x)):
        mask, players = ex.shap_mask(setup, setup.eligible(x)[i])
        torch.manual_seed(setup.seed + i)
        phi = captum_attr.KernelShap(forward).attribute(
            torch.as_tensor(x[i : i + 1]), baselines=torch.as_tensor(setup.baseline[i : i + 1]), target=int(target[i]),
            feature_mask=torch.as_tensor(mask).view(1, *x.shape[1:]), n_samples=setup.shap_samples,
            perturbations_per_eval=setup.shap_samples)  # (1, ...): each dimension holds its player's value
        per_dim = phi.double().numpy().ravel() / np.bincount(mask)[mask]  # a player's value shared over its dimensions
        per_dim[mask == players] = 0.0  # the pooled player (padding) has no effect and gets nothing
        out.append(per_dim)
    return np.stack(out)


def test_kernel_shap_equals_captums_on_image_patches(digits, cnn, sample):
    x, target = sample
    setup = _setup(digits, x, shap_samples=48)
    mask, players = ex.shap_mask(setup, setup.eligible(x)[0])
    assert players == 16 and mask.reshape(8, 8)[:2, :2].tolist() == [[0, 0], [0, 0]]  # 2x2 patches of the 8x8 digits
    ours = ex.kernel_shap(cnn.model, torch.as_tensor(x), torch.as_tensor(target), setup)
    theirs = _captum_kernel_shap(cnn.model, x, target, setup).reshape(len(x), -1)  # one channel: a dimension is a pixel
    # Same coalitions (same seed), same logits (the same rows in one batch), same regression: equal to float32 rounding.
    assert np.allclose(ours, theirs, atol=1e-6, rtol=0), np.abs(ours - theirs).max()
    assert np.abs(ours).max() > 1e-3


def test_kernel_shap_reads_token_ids_and_pools_the_padding():
    """A token model: ids stay whole numbers through the forward pass, and padding is one player with nothing to give."""
    from assay.models.zoo import build

    torch.manual_seed(0)
    model = build("gru", input_shape=(10,), num_classes=3, vocab_size=40, embed_dim=8, hidden=8).eval()
    ids = torch.randint(1, 40, (4, 10)).numpy()
    ids[:, 6:] = 0  # padding
    target = np.array([0, 1, 2, 0])
    setup = ex.Setup(names=[str(t) for t in range(10)], groups=[np.array([t]) for t in range(10)], shape=(10,), tokens=True,
                     baseline=np.zeros_like(ids), references=ids, shap_samples=40, seed=2)
    ours = ex.kernel_shap(model, torch.as_tensor(ids), torch.as_tensor(target), setup)
    assert ex.shap_mask(setup, setup.eligible(ids)[0])[1] == 6  # six tokens, the padding pooled
    assert np.allclose(ours, _captum_kernel_shap(model, ids, target, setup), atol=1e-6, rtol=0)
    assert (ours[:, 6:] == 0).all() and np.abs(ours[:, :6]).min() > 0


def test_share_out_keeps_each_players_sum():
    groups = [np.array([0, 1]), np.array([2]), np.array([3])]  # feature 0 spans two dimensions
    player = np.array([0, 0, 0, 1])  # dimensions 0-2 are player 0; dimension 3 is player 1, the pooled one
    assert am.share_out(np.array([3.0]), player, groups).tolist() == [2.0, 1.0, 0.0]


def _removal_forward(model, setup):
    owner = am.owner_of(setup.groups, int(np.prod(setup.shape)))

    def forward(z, xs, bs):  # presence (B, F) -> the model's logits on x with the absent features at their baseline
        keep = (z[:, owner] > 0.5).view(xs.shape)
        return model(torch.where(keep, xs, bs))

    return forward


def test_infidelity_and_max_sensitivity_equal_captum_metrics_called_directly(digits, cnn, sample):
    x, target = sample
    setup = _setup(digits, x)
    ig = ex.integrated_gradients(cnn.model, torch.as_tensor(x), torch.as_tensor(target), setup)
    ours = yeh.infidelity(cnn.model, x, target, setup, ig, samples=6, seed=3)
    g = torch.Generator().manual_seed(3)

    def remove_a_quarter(z):  # each present feature removed with probability 0.25
        removed = z * (torch.rand(z.shape, generator=g, dtype=torch.float64) < 0.25).to(z.dtype)
        return removed, z - removed

    theirs = captum_metrics.infidelity(
        _removal_forward(cnn.model, setup), remove_a_quarter, torch.as_tensor(setup.eligible(x), dtype=torch.float64),
        torch.as_tensor(ig), additional_forward_args=(torch.as_tensor(x), torch.as_tensor(setup.baseline)),
        target=torch.as_tensor(target), n_perturb_samples=6, max_examples_per_batch=len(x) * 6, normalize=True)
    assert np.allclose(ours, theirs.double().numpy(), rtol=1e-5, atol=1e-9), (ours, theirs)
    assert ours.shape == (len(x),) and (ours >= 0).all()

    # Max-sensitivity of saliency: Captum's own Saliency on the same noisy copies (one channel: |grad| per pixel).
    ours = yeh.max_sensitivity(ex.saliency, cnn.model, x, target, setup, samples=3, radius=0.02, seed=4)
    g = torch.Generator().manual_seed(4)
    radius = 0.02 * float(x.max() - x.min())
    theirs = captum_metrics.sensitivity_max(
        lambda inputs, target: captum_attr.Saliency(cnn.model).attribute(inputs, target=target),
        torch.as_tensor(x), perturb_func=lambda t: t + radius * (torch.rand(t.shape, generator=g, dtype=t.dtype) * 2 - 1),
        n_perturb_samples=3, max_examples_per_batch=len(x) * 3, target=torch.as_tensor(target))
    assert np.allclose(ours, theirs.double().numpy(), rtol=1e-4, atol=1e-6), (ours, theirs)
    assert (ours > 0).all()


@pytest.fixture(scope="module")
def explained(cnn, digits, tmp_path_factory):
    from assay.checks.base import CheckContext
    from assay.checks.predictions import PredictionCache

    context = CheckContext(task=digits, predictions=PredictionCache(tmp_path_factory.mktemp("p")), seed=0, n_boot=200)
    check = Explain(n_examples=40, methods=["saliency", "integrated_gradients", "ablation"], cascade_steps=1)
    return check, context, {e.metric: e for e in check.run(cnn, context) if e.metric != SKIPPED}


def test_every_method_row_has_its_infidelity_and_the_best_its_max_sensitivity(explained):
    _, _, records = explained
    gain = records["faithfulness_gain"]
    best = gain.details["best_method"]
    for method, row in gain.details["methods"].items():
        lo, hi = row["infidelity"]["interval"]
        assert lo <= row["infidelity"]["value"] <= hi and lo >= 0, method
        assert (row["max_sensitivity"] is None) == (method != best)  # by default only the most faithful method's
    sensitivity = records["max_sensitivity"]
    assert sensitivity.details["method"] == best and sensitivity.value == gain.details["methods"][best]["max_sensitivity"]["value"]
    print("infidelity:", {m: round(r["infidelity"]["value"], 4) for m, r in gain.details["methods"].items()},
          f"max-sensitivity of {best}: {sensitivity.value:.3f} [{sensitivity.low:.3f}, {sensitivity.high:.3f}]")


def test_per_class_maps_are_full_and_the_examples_are_the_most_confident_right_and_wrong(explained, digits, cnn):
    check, context, records = explained
    details = records["faithfulness_gain"].details
    best, found = details["best_method"], details["shortcuts"]
    idx = check.sample(context)
    x, labels = np.asarray(digits.test.x[idx]), np.asarray(digits.test.y[idx])
    probs = context.predict(cnn).probs[idx]
    predicted = probs.argmax(1)
    a = Explain.attributions(check, cnn.model, x, predicted, check.setup(context, x), [best])[best]

    # Full per-class means: every pixel, each class's examples of the sample, weighted back to the overall mean.
    assert set(found["class_mean_abs"]) == {digits.class_names[c] for c in np.unique(labels)}
    for c in np.unique(labels):
        assert np.allclose(found["class_mean_abs"][digits.class_names[c]], np.abs(a[labels == c]).mean(0), atol=1e-9)
    counts = {digits.class_names[c]: (labels == c).sum() for c in np.unique(labels)}
    weighted = sum(np.asarray(v) * counts[c] for c, v in found["class_mean_abs"].items()) / len(labels)
    assert np.allclose(weighted, found["mean_abs"], atol=1e-9) and len(found["mean_abs"]) == 64

    examples = details["examples"]
    right = predicted == labels
    confidence = probs.max(1)
    want = [("most confident right", i) for i in np.argsort(-np.where(right, confidence, -1), kind="stable")[:2]]
    want += [("most confident wrong", i) for i in np.argsort(-np.where(~right, confidence, -1), kind="stable")[: min(2, (~right).sum())]]
    assert [(e["role"], e["index"]) for e in examples] == [(r, int(idx[i])) for r, i in want]
    for e, (_, i) in zip(examples, want):
        assert e["label"] == digits.class_names[labels[i]] and e["predicted"] == digits.class_names[predicted[i]]
        assert e["confidence"] == pytest.approx(confidence[i]) and e["method"] == best
        assert e["input"]["shape"] == [1, 8, 8] and np.allclose(e["input"]["values"], digits.test.x[e["index"]].ravel())
        assert np.allclose(e["attribution"], a[i], atol=1e-9)


def test_confident_examples_are_fewer_when_nothing_is_wrong():
    picks = am.confident_examples(np.array([True, True, True]), np.array([0.5, 0.9, 0.7]))
    assert picks == [("most confident right", 1), ("most confident right", 2)]


def test_a_texts_examples_are_its_kept_tokens_and_their_attributions(tmp_path):
    """Token tasks: padding dropped from each example, one attribution per kept token; per-class top tokens, no full map."""
    from assay.checks.base import CheckContext
    from assay.checks.predictions import PredictionCache
    from assay.data.task import Task
    from assay.recipes import RecipeContext, make_recipe

    rng = np.random.default_rng(0)
    words = ["great", "rally", "crooked", "media", "thank", "you", "vote", "today"]
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 7))) + (" https t.co" if i % 2 else "") for i in range(120)]
    labels = np.arange(120) % 2  # the link tells the class
    task = Task.from_arrays(np.array(texts[:80]), labels[:80], np.array(texts[80:]), labels[80:], modality="text", max_length=16,
                            class_names=["no link", "link"])
    gru = make_recipe("train", {"arch": "gru", "epochs": 1, "arch_options": {"embed_dim": 16, "hidden": 16}}, "t").make(
        "gru", RecipeContext(task=task, work_dir=tmp_path, progress=False))
    context = CheckContext(task=task, predictions=PredictionCache(None), n_boot=100)
    check = Explain(n_examples=16, methods=["integrated_gradients"], cascade_steps=1)
    gain = {e.metric: e for e in check.run(gru, context)}["faithfulness_gain"]
    assert "class_mean_abs" not in gain.details["shortcuts"] and gain.details["shortcuts"]["per_class"]
    names = task.pipeline.token_names(task.test.x)
    assert gain.details["examples"]
    for e in gain.details["examples"]:
        ids = np.asarray(task.test.x[e["index"]])
        kept = ids[ids != 0]
        assert e["input"]["tokens"] == [names[int(t)] for t in kept] and e["input"]["tokens"][0] == "[CLS]"
        assert len(e["attribution"]) == len(kept) < len(ids)


def test_without_captum_the_check_runs_and_says_what_it_did_not_measure(mlp, context, monkeypatch):
    monkeypatch.setattr(ex, "captum_missing", lambda: "needs Captum: pip install 'assay[explain]'")
    records = {e.metric: e for e in Explain(n_examples=8, methods=["saliency", "kernel_shap"], cascade_steps=1).run(mlp, context)}
    details = records["faithfulness_gain"].details
    assert list(details["methods"]) == ["saliency"] and "Captum" in details["not_applicable"]["kernel_shap"]
    assert details["methods"]["saliency"]["infidelity"] is None and "max_sensitivity" not in records
    assert any("infidelity and max-sensitivity not measured: needs Captum" in n for n in details["notes"])


def test_the_passes_at_the_input_and_its_baseline_are_made_once_and_read_as_if_made_again(digits, cnn, sample):
    """Every curve starts and ends at the input or its baseline, infidelity's unperturbed term is f(x), IG's completeness reads
    both: ``Explain.endpoints`` forwards them once, and what each reads equals forwarding them again."""
    x, target = sample
    setup = _setup(digits, x)
    check = Explain(curve_steps=4)
    ig = ex.integrated_gradients(cnn.model, torch.as_tensor(x), torch.as_tensor(target), setup)
    ends = check.endpoints(cnn.model, x, setup)
    curves = check.curves(cnn.model, x, target, setup, {"integrated_gradients": ig}, ends)["integrated_gradients"]
    fractions = np.linspace(0, 1, 5)
    removed = am.removal_masks(ig, setup.eligible(x), fractions)
    for kind, masks in (("deletion", removed), ("insertion", ~removed)):  # every step forwarded, the first and last included
        every = ex.target_probability(cnn.model, setup.remove(x, masks), np.repeat(target, 5), setup.batch_size).reshape(len(x), 5)
        assert np.allclose(curves[kind], every, rtol=0, atol=1e-9)
        assert np.allclose(curves[f"{kind}_auc"], am.curve_auc(every, fractions), rtol=0, atol=1e-9)

    from assay.models import gradients as grad

    xt, t = torch.as_tensor(x), torch.as_tensor(target).view(-1, 1)
    gap = (grad.logits_at(cnn.model, xt, xt).gather(1, t) - grad.logits_at(cnn.model, xt, torch.as_tensor(setup.baseline)).gather(1, t))
    # float32 logits, from batches of other sizes: the error, a small difference over the gap, agrees to 1e-5
    assert np.allclose(check.completeness(target, ig, ends), am.completeness_error(ig.sum(axis=1), gap[:, 0].numpy()), rtol=0, atol=1e-5)

    rows: list[int] = []
    handle = cnn.model.register_forward_hook(lambda _m, _i, out: rows.append(len(out)))
    try:
        given = yeh.infidelity(cnn.model, x, target, setup, ig, samples=4, seed=1, logits=ends[: len(x)])
        assert sum(rows) == 4 * len(x)  # only the perturbed inputs: f(x) was given
        rows.clear()
        itself = yeh.infidelity(cnn.model, x, target, setup, ig, samples=4, seed=1)
        assert sum(rows) == 5 * len(x)  # f(x) once, however many batches of perturbations Captum makes
    finally:
        handle.remove()
    assert np.allclose(given, itself, rtol=1e-5, atol=1e-9)  # f(x) from another batch: float32 rounding apart


def test_ig_completeness_of_a_token_model_starts_its_path_under_the_inputs_padding_mask():
    """A GRU over padded ids: IG runs in embedding space with the ids (and their padding mask) of x, so the completeness gap is
    f(x) - f(baseline embeddings under x's mask). It closes to 1e-4 at 200 steps; forwarding the baseline ids (an all-padding
    mask) would leave an error of order 1 (measured 46 at most on these rows)."""
    from assay.models import gradients as grad
    from assay.models.zoo import build

    torch.manual_seed(0)
    model = build("gru", input_shape=(12,), num_classes=3, vocab_size=50, embed_dim=8, hidden=8).eval()
    x = torch.randint(1, 50, (16, 12))
    x[:, 8:] = 0  # padding
    target = model(x).argmax(1)
    base = torch.zeros_like(x)
    ig = grad.integrated_gradients(model, x, target, base, n_steps=200).sum(-1).numpy()  # (N, T): per token
    ends = torch.cat([model(x), model(base)]).detach()
    setup = ex.Setup(names=[str(i) for i in range(12)], groups=[np.array([i]) for i in range(12)], shape=(12,), tokens=True,
                     baseline=base.numpy(), references=base.numpy()[:1])
    check = Explain()
    assert check.completeness(target.numpy(), ig, ends, model, x.numpy(), setup).max() < 1e-4
    assert check.completeness(target.numpy(), ig, ends).max() > 0.1  # the baseline ids' own pass is not IG's path start
