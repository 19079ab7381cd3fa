"""Compression: ONNX export, pruning, distillation, and the harm each variant does."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from assay.checks.comparison import Comparison
from assay.models.candidate import Candidate
from assay.models.inputs import as_input
from assay.recipes import RecipeContext, make_recipe
from assay.recipes.distill import distillation_loss


def make(kind, name, parents, task, tmp_path, **options):
    recipe = make_recipe(kind, options, name)
    return recipe.make(name, RecipeContext(task=task, work_dir=tmp_path / name, candidates=parents, progress=False))


def accuracy(candidate, task):
    return float((candidate.predict(as_input(task.test.x)).argmax(1).numpy() == task.test.y).mean())


def test_onnx_fp32_logits_equal_pytorch_and_int8_is_smaller(cnn, digits, tmp_path):
    onnx = make("export", "cnn-onnx", {"cnn": cnn}, digits, tmp_path, parent="cnn")
    x = as_input(digits.test.x)
    (ours, our_features), (theirs, their_features) = onnx.forward(x, embeddings=True), cnn.to("cpu").forward(x, embeddings=True)
    assert (ours - theirs).abs().max().item() < 1e-4
    assert (our_features - their_features).abs().max().item() < 1e-4
    assert onnx.flops_per_sample(x[:1]) == cnn.flops_per_sample(x[:1]) > 0  # counted at export, kept in the graph
    onnx.save(tmp_path)
    back = Candidate.load(tmp_path, "cnn-onnx")
    assert back.id == onnx.id and torch.equal(back.predict(x), onnx.predict(x))
    int8 = make("export", "cnn-ort-int8", {"cnn": cnn}, digits, tmp_path, parent="cnn", precision="int8")
    assert int8.provenance.transforms == ("onnx_int8",) and int8.provenance.parent == "cnn"
    assert int8.deploy_bytes() < 0.7 * onnx.deploy_bytes()  # a 5k-weight model: the graph's own bytes weigh in
    assert accuracy(int8, digits) >= accuracy(cnn, digits) - 0.02
    # The exporter's debug stack traces are gone: no path of this machine ships inside a model, and its bytes do not depend on where assay runs.
    graph = onnx.model.graph_bytes()
    import assay

    assert Path(assay.__file__).parent.as_posix().encode() not in graph and b".py" not in graph


@pytest.fixture(scope="module")
def wide_cnn(digits, tmp_path_factory):
    """A CNN with room to prune (the shared fixture's is already tiny)."""
    return make("train", "cnn", {}, digits, tmp_path_factory.mktemp("wide"), arch="cnn", arch_options={"channels": [32, 64]}, epochs=10)


def test_channel_pruning_shrinks_the_architecture_and_reloads(wide_cnn, digits, tmp_path):
    cnn = wide_cnn
    pruned = make("prune", "cnn-pruned", {"cnn": cnn}, digits, tmp_path, parent="cnn", sparsity=0.5, steps=2, epochs_per_step=4)
    assert pruned.provenance.arch["channels"] == [16, 32]  # [32, 64], halved
    assert pruned.parameter_count() < 0.35 * cnn.parameter_count()
    assert accuracy(pruned, digits) >= accuracy(cnn, digits) - 0.03
    pruned.save(tmp_path)
    back = Candidate.load(tmp_path, "cnn-pruned")
    x = as_input(digits.test.x)
    assert torch.equal(back.predict(x), pruned.predict(x))
    assert pruned.training["epochs_run"] == 8 and [r["epoch"] for r in pruned.training["history"]] == list(range(1, 9))


def test_magnitude_pruning_reaches_the_asked_sparsity(mlp, digits, tmp_path):
    sparse = make("prune", "mlp-sparse", {"mlp": mlp}, digits, tmp_path, parent="mlp", method="magnitude", sparsity=0.7, steps=2, epochs_per_step=1)
    assert sparse.training["weight_sparsity"] == pytest.approx(0.7, abs=0.002)
    assert sparse.provenance.arch == mlp.provenance.arch
    assert not any("weight_orig" in k for k in sparse.model.state_dict())  # masks made permanent


def test_distillation_loss_is_hintons():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    t, alpha = 3.0, 0.7
    p = torch.softmax(teacher / t, 1)
    kl = (p * (p.log() - torch.log_softmax(student / t, 1))).sum(1).mean()
    ce = -torch.log_softmax(student, 1)[torch.arange(6), labels].mean()
    assert distillation_loss(student, teacher, labels, t, alpha).item() == pytest.approx((alpha * t * t * kl + (1 - alpha) * ce).item(), rel=1e-6)


def test_a_distilled_student_is_smaller_and_learns(wide_cnn, digits, tmp_path):
    cnn = wide_cnn
    student = make("distill", "student", {"cnn": cnn}, digits, tmp_path, parent="cnn", arch="mlp", arch_options={"hidden": [64]}, epochs=20)
    assert student.provenance.parent == "cnn" and student.provenance.arch["hidden"] == [64]
    assert student.parameter_count() < cnn.parameter_count() / 3
    assert accuracy(student, digits) >= 0.9


def _confident(predicted, k):
    return np.full((len(predicted), k), 0.1 / (k - 1)) + 0.9 * np.eye(k)[predicted] - 0.1 / (k - 1) * np.eye(k)[predicted]


def _harm(digits, wrong_per_class):
    """The comparison check on a parent that is always right and a variant with errors planted per class."""
    y = digits.test.y
    variant_pred = y.copy()
    for c, n in wrong_per_class.items():
        index = np.flatnonzero(y == c)[:n]
        variant_pred[index] = (c + 1) % digits.num_classes
    parent = SimpleNamespace(name="parent", provenance=SimpleNamespace(parent=None))
    variant = SimpleNamespace(name="variant", provenance=SimpleNamespace(parent="parent"))
    predictions = {"parent": y, "variant": variant_pred}
    context = SimpleNamespace(task=digits, n_boot=500, seed=0, candidates={"parent": parent, "variant": variant}, reference=parent, views=(), checks={},
                              split="test", data=digits.test,
                              predict=lambda c: SimpleNamespace(labels=y, predicted=predictions[c.name], probs=_confident(predictions[c.name], digits.num_classes)))
    return {e.metric: e for e in Comparison().run(variant, context)}["accuracy_drop"]


def test_harm_planted_in_one_class_is_flagged(digits):
    drop = _harm(digits, {3: 15})
    assert drop.details["harmed_classes"] == ["3"]
    assert drop.details["forgotten_count"] == 15 and len(drop.details["forgotten_preview"]) == 8
    assert drop.details["forgotten_preview"][0]["label"] == "3" and drop.details["forgotten_preview"][0]["candidate"] == "4"


def test_uniform_harm_is_not_flagged(digits):
    drop = _harm(digits, {c: 2 for c in range(10)})  # the same kind of loss, spread evenly
    assert drop.value == pytest.approx(20 / len(digits.test.y))
    assert drop.details["harmed_classes"] == []


@pytest.mark.parametrize("mode", ["fp16", "bf16"])
def test_half_precision_halves_the_size_and_round_trips(cnn, digits, tmp_path, mode):
    half = make("quantize", f"cnn-{mode}", {"cnn": cnn}, digits, tmp_path, parent="cnn", mode=mode)
    assert half.deploy_bytes() < 0.6 * cnn.deploy_bytes()
    x = as_input(digits.test.x)
    full = cnn.to("cpu").predict(x)
    assert (half.predict(x) - full).abs().max().item() < 0.05 * full.abs().max().item()
    assert accuracy(half, digits) >= accuracy(cnn, digits) - 0.01
    half.save(tmp_path)
    back = Candidate.load(tmp_path, f"cnn-{mode}")
    assert back.id == half.id and torch.equal(back.predict(x), half.predict(x))


@pytest.mark.parametrize("arch, shape, options", [("transformer", (16,), {"vocab_size": 50}), ("gru", (16,), {"vocab_size": 50}), ("mlp", (1, 8, 8), {})])
def test_exported_graphs_take_any_batch_size(arch, shape, options):
    from assay.models import exported, zoo

    torch.manual_seed(0)
    model = zoo.build(arch, input_shape=shape, num_classes=3, **options).eval()
    example = torch.randint(1, 50, (2, *shape)) if options else torch.randn(2, *shape)
    graph = exported.OnnxClassifier(exported.export_onnx(model, example))
    batch = torch.randint(1, 50, (5, *shape)) if options else torch.randn(5, *shape)
    assert (graph(batch) - model(batch)).abs().max().item() < 1e-4


def test_an_onnx_file_loads_as_a_candidate_and_quantizes(cnn, digits, tmp_path):
    from assay.errors import ModelError
    from assay.models import exported

    x = as_input(digits.test.x)
    path = tmp_path / "model.onnx"
    path.write_bytes(exported.export_onnx(cnn.to("cpu").model, x[:2]))
    loaded = make("load", "mine", {}, digits, tmp_path, path=str(path))
    assert loaded.provenance.transforms == ("onnx_fp32",)
    assert (loaded.predict(x) - cnn.predict(x)).abs().max().item() < 1e-4
    int8 = make("export", "mine-int8", {"mine": loaded}, digits, tmp_path, parent="mine", precision="int8")
    assert int8.provenance.transforms == ("onnx_int8",) and accuracy(int8, digits) >= accuracy(cnn, digits) - 0.02
    wrong_task = digits.without_classes(["9"])  # nine classes: the model's ten logits do not fit
    with pytest.raises(ModelError, match="10 classes|9 classes"):
        make("load", "misfit", {}, wrong_task, tmp_path, path=str(path))


def test_dynamic_int8_covers_recurrent_layers_and_round_trips(tmp_path):
    from assay.data.builtin import load_builtin

    signals = load_builtin("mnist1d", seed=0)
    gru = make("train", "gru", {}, signals, tmp_path, arch="gru", epochs=4)
    int8 = make("quantize", "gru-int8", {"gru": gru}, signals, tmp_path, parent="gru")
    assert "int8" in type(int8.model.body.gru).__module__ or "quantized" in type(int8.model.body.gru).__module__
    assert int8.deploy_bytes() < 0.5 * gru.deploy_bytes()
    assert abs(accuracy(int8, signals) - accuracy(gru, signals)) <= 0.02
    int8.save(tmp_path)
    back = Candidate.load(tmp_path, "gru-int8")
    x = as_input(signals.test.x)
    assert back.id == int8.id and torch.equal(back.predict(x), int8.predict(x))
