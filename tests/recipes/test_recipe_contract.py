"""The recipe contract, run over every registered recipe (as scikit-learn's test_common.py runs every estimator).

Each recipe, on a tiny task: returns a Candidate with full provenance; every
epoch it trains reaches the study's hook (counted independently, at the
loop); the same seed gives bit-identical weights; a run interrupted from the
hook after its first epoch resumes and ends with the weights of an
uninterrupted run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from assay.data.builtin import load_builtin
from assay.models.candidate import Candidate
from assay.models.inputs import as_input
from assay.recipes import RECIPES, RecipeContext, load_all, loop, make_recipe

PARENT = "parent"
TINY = {"arch": "mlp", "arch_options": {"hidden": [16]}}

# kind -> (task, options). Each case is one recipe on a tiny task with tiny epochs.
CASES: dict[str, tuple[str, dict]] = {
    "train": ("digits", {**TINY, "epochs": 3}),
    "adversarial": ("digits", {**TINY, "epochs": 3, "steps": 2}),
    "distill": ("digits", {"parent": PARENT, **TINY, "epochs": 3}),
    "prune": ("digits", {"parent": PARENT, "method": "magnitude", "steps": 2, "epochs_per_step": 2}),
    "selfsup": ("digits", {**TINY, "pretrain_epochs": 2, "epochs": 2, "batch_size": 128}),
    "fewshot": ("digits", {"strategy": "prototypes", "parent": PARENT}),
    "quantize": ("digits", {"parent": PARENT}),
    "export": ("digits", {"parent": PARENT}),
    "load": ("digits", {"path": "<saved parent>"}),
    "sklearn": ("digits", {"max_iter": 200}),
    "transfer": ("tweets", {"strategy": "linear-probe", "epochs": 3}),
}
# fewshot's setfit strategy and transfer's finetune/lora fine-tune MiniLM itself: seconds per step on two
# cores, so they stay in tests/recipes/test_transfer.py; their registration is covered by the cases above.


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def tasks():
    digits = load_builtin("digits", seed=0).with_labels_per_class(5, seed=0)
    digits = replace(digits, pool=digits.pool.subset(np.arange(300)), test=digits.test.subset(np.arange(50)))  # selfsup's pretraining pool
    tweets = load_builtin("tweets", seed=0).with_labels_per_class(8, seed=0)
    return {"digits": digits, "tweets": tweets}


@pytest.fixture(scope="module")
def parent(tasks, tmp_path_factory):
    work = tmp_path_factory.mktemp("parent")
    candidate = make_recipe("train", {**TINY, "epochs": 2}, "test").make(PARENT, RecipeContext(task=tasks["digits"], work_dir=work, progress=False))
    candidate.save(work / "saved")
    return candidate, work / "saved" / f"{PARENT}.safetensors"


def _options(kind: str, parent) -> dict:
    options = CASES[kind][1]
    return {**options, "path": str(parent[1])} if kind == "load" else options


def _make(kind: str, tasks, parent, work: Path, on_epoch_end=None) -> tuple[Candidate, list[int]]:
    """The recipe's candidate, and every epoch the one loop ran for it (counted where it runs, not where the hook is called)."""
    context = RecipeContext(task=tasks[CASES[kind][0]], work_dir=work, progress=False, candidates={PARENT: parent[0]}, on_epoch_end=on_epoch_end)
    counted, real = [], loop._epoch

    def counting(*args, **kwargs):
        row = real(*args, **kwargs)
        counted.append(row["epoch"])
        return row

    with mock.patch.object(loop, "_epoch", counting):
        return make_recipe(kind, _options(kind, parent), f"test [[recipe]] '{kind}'").make(kind, context), counted


@pytest.fixture(scope="module")
def straight(tasks, parent, tmp_path_factory):
    """One uninterrupted run per recipe, its hook recording, shared by the tests below (a run costs seconds)."""
    made: dict[str, tuple] = {}

    def get(kind: str) -> tuple[Candidate, list[int], list[int]]:
        if kind not in made:
            seen: list[int] = []
            candidate, counted = _make(kind, tasks, parent, tmp_path_factory.mktemp(kind), on_epoch_end=lambda epoch, row: seen.append(epoch))
            made[kind] = (candidate, seen, counted)
        return made[kind]

    return get


def _assert_same_weights(a: Candidate, b: Candidate) -> None:
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert wa.keys() == wb.keys()
    for key in wa:
        if isinstance(wa[key], torch.Tensor):
            assert torch.equal(wa[key], wb[key]), key
    assert a.id == b.id


TRAINS = ("adversarial", "distill", "prune", "selfsup", "train", "transfer")  # the recipes that run the training loop


def test_every_registered_recipe_has_a_case():
    assert set(load_all()) == set(CASES), "add the new recipe to CASES (tiny options) so the contract runs on it"


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_recipe_gives_a_candidate_with_full_provenance_and_every_epoch_reaches_the_hook(kind, tasks, parent, straight):
    candidate, seen, epochs_trained = straight(kind)
    task = tasks[CASES[kind][0]]
    assert isinstance(candidate, Candidate) and candidate.name == kind
    p = candidate.provenance
    assert p.arch["input_shape"] == list(task.input_shape) and p.arch["num_classes"] == task.num_classes and p.arch["name"]
    assert p.data_hash == task.digest() and isinstance(p.seed, int) and "torch" in p.versions
    if kind == "load":  # a loaded candidate keeps the provenance it was saved with
        assert p == parent[0].provenance
    else:
        assert p.recipe == kind == RECIPES[kind].kind
        assert p.config == make_recipe(kind, _options(kind, parent), "x").params()
    if "parent" in CASES[kind][1]:
        assert p.parent == PARENT and p.parent_id == parent[0].id
    json.dumps(candidate.describe())  # the store can write it
    logits = candidate.predict(as_input(task.test.x[:5]))
    assert logits.shape == (5, task.num_classes) and torch.isfinite(logits).all()
    assert seen == epochs_trained  # every epoch of every stage, in order, and nothing else
    assert (len(seen) > 0) == (kind in TRAINS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_same_seed_gives_bit_identical_weights(kind, tasks, parent, straight, tmp_path):
    _assert_same_weights(straight(kind)[0], _make(kind, tasks, parent, tmp_path / "again")[0])


@pytest.mark.parametrize("kind", TRAINS)
def test_a_run_interrupted_after_its_first_epoch_resumes_to_the_same_weights(kind, tasks, parent, straight, tmp_path):
    uninterrupted, _, epochs = straight(kind)

    def stop_after_first(epoch, row):
        raise Interrupt

    with pytest.raises(Interrupt):
        _make(kind, tasks, parent, tmp_path / "resumed", on_epoch_end=stop_after_first)
    resumed, counted = _make(kind, tasks, parent, tmp_path / "resumed")
    assert len(counted) == len(epochs) - 1  # lost nothing, repeated nothing
    _assert_same_weights(uninterrupted, resumed)
