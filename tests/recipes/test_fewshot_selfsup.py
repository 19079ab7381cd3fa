"""fewshot and selfsup: prototypes equal nearest centroids; pairs grow linearly; NT-Xent by hand."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestCentroid

from assay.models.inputs import as_input
from assay.recipes import RecipeContext, make_recipe
from assay.recipes.fewshot import sample_pairs
from assay.data.corruptions import CORRUPTIONS
from assay.recipes.selfsup import Augmenter, nt_xent
from assay.study import load_task


def test_prototypes_predict_as_sklearn_nearest_centroid(cnn, tmp_path):
    task = load_task({"builtin": "digits", "labels_per_class": 5}, base_dir=Path("."), seed=0)
    ctx = RecipeContext(task=task, work_dir=tmp_path, progress=False, candidates={"cnn": cnn})
    proto = make_recipe("fewshot", {"strategy": "prototypes", "parent": "cnn"}, "x").make("proto", ctx)
    embed = lambda split: cnn.embed(as_input(split.x)).numpy()  # noqa: E731
    reference = NearestCentroid().fit(embed(task.train), task.train.y).predict(embed(task.test))
    ours = proto.predict(as_input(task.test.x)).argmax(1).numpy()
    assert (ours == reference).mean() >= 0.995  # float32 ties aside, the same classifier
    assert proto.provenance.parent == "cnn"


@pytest.mark.parametrize("n", [10, 40, 160])
def test_pair_sampling_is_linear_in_the_examples(n):
    labels = np.arange(n) % 4
    pairs, targets = sample_pairs(labels, 5, np.random.default_rng(0))
    assert len(pairs) == 2 * 5 * n  # not n * (n - 1) / 2
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    assert np.array_equal(same, targets == 1.0)


def test_nt_xent_by_hand():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    # For view 0 of input 0: positive sim 1/t, negatives: input 1's views (sim 0) -> logits [0, 0, 2] over 3 candidates.
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected, rel=1e-6)


def test_selfsup_pretrains_on_the_pool_and_probes(tmp_path):
    task = load_task({"builtin": "digits", "labels_per_class": 10}, base_dir=Path("."), seed=0)
    ctx = RecipeContext(task=task, work_dir=tmp_path, progress=False)
    model = make_recipe("selfsup", {"arch": "cnn", "pretrain_epochs": 3, "arch_options": {"channels": [16, 32]}}, "x").make("ssl", ctx)
    pre = model.training["pretraining"]
    assert pre["epochs_run"] == 3 and model.training["pretrain_examples"] > len(task.train)
    # The held-out contrastive loss (eval mode, so batch norm uses running statistics) falls every epoch;
    # with augmentations drawn per batch it rose after the first, and the first epoch's encoder was kept.
    assert pre["best_epoch"] == 3
    accuracy = (model.predict(as_input(task.test.x)).argmax(1).numpy() == task.test.y).mean()
    assert accuracy > 0.5  # three epochs of SimCLR on 1,400 unlabelled digits already separate the classes (chance: 0.1)


def test_augmentations_are_drawn_per_example():
    augment = Augmenter("image", seed=0)
    augment.ops = [(CORRUPTIONS["image"]["contrast"], (1, 2))]  # deterministic given its severity
    digit = load_task({"builtin": "digits"}, base_dir=Path("."), seed=0).train.x[:1]
    out = augment(torch.as_tensor(np.repeat(digit, 200, axis=0))).numpy().reshape(200, -1)
    versions = np.unique(out.round(6), axis=0)
    assert len(versions) == 3  # untouched, severity 1 and severity 2 side by side in one batch
    untouched = np.isclose(out, digit.reshape(1, -1)).all(1).mean()
    assert 0.1 < untouched < 0.3  # each example is augmented with probability 0.8
