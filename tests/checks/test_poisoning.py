"""The poisoning check: its math against direct numpy, and on a CNN trained on BadNets-poisoned digits against the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assay.checks.base import CheckContext, make_check
from assay.checks.poisoning_math import class_scatter, detect, inverse_sqrt, spectral_signature
from assay.checks.predictions import PredictionCache
from assay.data.task_table import load_task
from assay.data.transforms import poison_record
from assay.errors import SpecError
from assay.evidence import SKIPPED, problems
from conftest import train


@pytest.fixture(scope="module")
def poisoned_digits():
    """Digits with 5% of the training examples stamped with a 3x3 corner patch and relabelled '0'."""
    return load_task({"builtin": "digits", "poison": {"kind": "badnets", "fraction": 0.05, "target": "0"}}, base_dir=Path("."), seed=0)


@pytest.fixture(scope="module")
def backdoored(poisoned_digits, tmp_path_factory):
    """The conftest's small CNN, trained on the poisoned digits (a couple of seconds)."""
    return train(poisoned_digits, "cnn", tmp_path_factory.mktemp("backdoored"), epochs=12, arch_options={"channels": [16, 32]})


def _by_metric(evidence):
    return {e.metric: e for e in evidence}


def test_spectral_signature_scores_equal_a_direct_svd():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    centred = f - f.mean(0)
    scores, vt, singular = spectral_signature(centred)
    _, _, direct = np.linalg.svd(centred)  # Tran et al. 2018: squared projection on the top right singular vector
    assert np.allclose(scores, (centred @ direct[0]) ** 2, rtol=1e-10, atol=1e-12)
    values, vectors = np.linalg.eigh(centred.T @ centred)  # the same direction from the scatter matrix
    assert np.allclose(scores, (centred @ vectors[:, -1]) ** 2, rtol=1e-8) and np.isclose(singular[0] ** 2, values[-1])


def test_class_scatter_is_the_pooled_within_class_scatter_computed_one_class_at_a_time():
    rng = np.random.default_rng(1)
    f, y = rng.normal(size=(300, 6)), rng.integers(0, 4, 300)
    stats = class_scatter(f, y)
    direct = sum(np.cov(f[y == c].T, bias=True) * (y == c).sum() for c in range(4))
    assert np.allclose(stats.total, direct) and np.array_equal(stats.counts, np.bincount(y))
    assert np.allclose(stats.means, [f[y == c].mean(0) for c in range(4)])
    wide = class_scatter(f, y, max_dims=3)  # wider than max_dims: the top directions of the pooled scatter
    values = np.linalg.eigvalsh(direct)[::-1][:3]
    assert wide.basis.shape == (6, 3) and np.allclose(np.sort(np.linalg.eigvalsh(wide.total))[::-1], values)


def test_a_planted_group_of_mixed_examples_is_found_and_a_natural_sub_mode_is_not():
    rng = np.random.default_rng(2)
    means = rng.normal(scale=6, size=(4, 8))
    y = np.repeat(np.arange(4), 150)
    f = means[y] + rng.normal(size=(600, 8))
    f[y == 1] += np.where(rng.random((150, 1)) < 0.5, 2.5, -2.5) * np.eye(8)[0]  # class 1: two natural modes, alike in spread
    planted = np.flatnonzero(y != 0)[rng.choice(450, 40, replace=False)]
    f[planted] += np.eye(8)[3] * 12  # a trigger feature on examples of classes 1-3 ...
    y = y.copy()
    y[planted] = 0  # ... labelled 0: a spread group of several kinds behind one label
    findings = detect(f, y, seed=0)
    assert findings[0][1].poisoned and set(findings[0][0][findings[0][1].flagged]) == set(planted)
    assert not any(findings[c][1].poisoned for c in (1, 2, 3)), {c: findings[c][1].reason for c in findings}


def test_badnets_on_digits_is_found_with_high_recall_at_a_low_false_positive_rate(backdoored, poisoned_digits, tmp_path):
    context = CheckContext(task=poisoned_digits, predictions=PredictionCache(tmp_path / "p"), seed=0, n_boot=200)
    check = make_check("poisoning", {})
    records = _by_metric(check.run(backdoored, context))
    asr, recall, fpr = records["attack_success_rate"], records["poison_recall"], records["poison_false_positive_rate"]
    assert asr.view == "trigger" and asr.value >= 0.8, asr.interval_text()  # measured: 0.938 [0.900, 0.965]
    assert recall.value >= 0.8 and fpr.value <= 0.05, (recall.interval_text(), fpr.interval_text())  # measured: 1.000, 0.010
    found = records["suspected_poison_fraction"]
    counts = recall.details["counts"]
    assert counts["tp"] + counts["fn"] == len(poison_record(poisoned_digits)["poisoned"]) == found.details["truth"]["poisoned"]
    assert round(found.value * found.details["n"]) == counts["tp"] + counts["fp"] == len(found.details["suspected"])
    target = next(row for row in found.details["classes"] if row["class"] == "0")
    assert target["poisoned"] and not any(row["poisoned"] for row in found.details["classes"] if row["class"] != "0")
    previews = found.details["previews"]
    assert 0 < len(previews) <= 16 and all(np.asarray(p["image"]).shape == (1, 8, 8) for p in previews)
    assert [p["suspicion"] for p in previews] == sorted((p["suspicion"] for p in previews), reverse=True)
    assert not [p for e in records.values() for p in problems(e)]
    assert check.requests(poisoned_digits) == {("train", "clean", True), ("test", "trigger", False)}


def test_read_class_by_class_from_the_memory_mapped_cache_it_finds_what_the_whole_array_gives(backdoored, poisoned_digits, tmp_path):
    """The features as the cache stores them (a read-only map) against the same features whole in memory, and a direct whole-array oracle."""
    mapped = PredictionCache(tmp_path).get(backdoored, poisoned_digits, split="train", embeddings=True)
    whole = PredictionCache(None).get(backdoored, poisoned_digits, split="train", embeddings=True)
    assert isinstance(mapped.embeddings, np.memmap) and not isinstance(whole.embeddings, np.memmap)
    streamed, in_memory = detect(mapped.embeddings, mapped.labels, seed=0), detect(whole.embeddings, whole.labels, seed=0)
    assert streamed.keys() == in_memory.keys()
    for c, (rows, finding) in streamed.items():
        other_rows, other = in_memory[c]
        assert np.array_equal(rows, other_rows), c
        for name in finding.__dataclass_fields__:  # exactly: flags, suspicion, spectral scores, silhouette, spread ratio...
            assert np.array_equal(getattr(finding, name), getattr(other, name)), (c, name)
    # Oracle: whiten by the other classes' covariance computed from the whole array at once, then an SVD (Tran et al.)
    f, y = np.asarray(whole.embeddings, dtype=np.float64), whole.labels
    means = np.stack([f[y == c].mean(0) for c in range(10)])
    centred = f - means[y]  # (N, D): every row minus its class mean
    for c in (0, 3):  # the poisoned target and a clean class
        rest = centred[y != c]
        g = centred[y == c] @ inverse_sqrt(rest.T @ rest / len(rest))
        top = np.linalg.svd(g, full_matrices=False)[2][0]
        np.testing.assert_allclose(streamed[c][1].spectral, (g @ top) ** 2, rtol=1e-6, atol=1e-9)
    assert streamed[0][1].poisoned and streamed[0][1].flagged.sum() > 0


def test_a_clean_model_has_next_to_nothing_flagged(cnn, context):
    records = make_check("poisoning", {}).run(cnn, context)
    assert {e.metric for e in records} == {"suspected_poison_fraction"}  # no truth and no trigger on a task never poisoned
    assert records[0].value <= 0.05, records[0].interval_text()  # measured: 0.000 [0.000, 0.003]
    assert make_check("poisoning", {}).requests(context.task) == {("train", "clean", True)}


def test_a_model_without_features_is_skipped_with_the_reason_but_still_gets_its_attack_success(backdoored, poisoned_digits, monkeypatch):
    from dataclasses import replace

    from assay.models.candidate import Candidate

    blind = replace(backdoored.capabilities, features=False)  # as an ONNX graph without a features output declares
    monkeypatch.setattr(Candidate, "capabilities", property(lambda self: blind))
    context = CheckContext(task=poisoned_digits, predictions=PredictionCache(None), seed=0)
    records = _by_metric(make_check("poisoning", {}).run(backdoored, context))
    assert set(records) == {"attack_success_rate", SKIPPED} and "penultimate features" in records[SKIPPED].details["reason"]


def test_bad_options_are_refused_in_one_line():
    with pytest.raises(SpecError, match=r"'min_spread_ratio' must be at least 1, got 0.5"):
        make_check("poisoning", {"min_spread_ratio": 0.5})
    with pytest.raises(SpecError, match=r"unknown key 'dim' \(did you mean 'dims'\?\)"):
        make_check("poisoning", {"dim": 3})


def test_it_beats_arts_two_detectors_on_the_same_model_and_data(backdoored, poisoned_digits):
    """ART 1.20's SpectralSignatureDefense and ActivationDefence, untuned, on a PyTorchClassifier wrapping the same CNN."""
    pytest.importorskip("art")
    from torch import nn

    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    x, y = np.asarray(poisoned_digits.train.x), poisoned_digits.train.y
    truth = np.zeros(len(y), bool)
    truth[poison_record(poisoned_digits)["poisoned"]] = True
    clf = PyTorchClassifier(model=backdoored.model.eval(), loss=nn.CrossEntropyLoss(), input_shape=x.shape[1:], nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="cpu")
    onehot = np.eye(10, dtype=np.float32)[y]
    art = {name: np.asarray(make().detect_poison()[1]) == 0 for name, make in (
        ("spectral", lambda: SpectralSignatureDefense(clf, x, onehot, batch_size=256)), ("activation", lambda: ActivationDefence(clf, x, onehot)))}
    context = CheckContext(task=poisoned_digits, predictions=PredictionCache(None), seed=0)
    records = _by_metric(make_check("poisoning", {}).run(backdoored, context))
    ours = np.zeros(len(y), bool)
    ours[records["suspected_poison_fraction"].details["suspected"]] = True
    recall = {name: (flags & truth).sum() / truth.sum() for name, flags in {**art, "assay": ours}.items()}
    fpr = {name: (flags & ~truth).sum() / (~truth).sum() for name, flags in {**art, "assay": ours}.items()}
    # measured: assay recall 1.000 at FPR 0.010; ART spectral 0.413 at 0.499, activation 0.556 at 0.399
    assert recall["assay"] >= 0.8 and fpr["assay"] <= 0.05, (recall, fpr)
    assert recall["assay"] > max(recall["spectral"], recall["activation"]) and fpr["assay"] < min(fpr["spectral"], fpr["activation"]), (recall, fpr)
