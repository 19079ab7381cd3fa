"""The attacks on the digits CNN: inside the ball and the valid range, PGD equal to torchattacks', APGD as strong as theirs,
categorical columns untouched, tokens attacked in embedding space, Square Attack without gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.errors import SpecError
from assay.models import attacks as A
from assay.models.square_attack import square

torchattacks = pytest.importorskip("torchattacks")


@pytest.fixture(scope="module")
def sample(digits, cnn):
    """128 digits test images (already on [0, 1], torchattacks' range: no mapping needed) and their labels."""
    assert digits.test.x.min() >= 0 and digits.test.x.max() <= 1  # builtin digits: pixels / 16
    return torch.as_tensor(digits.test.x[:128]), torch.as_tensor(digits.test.y[:128])


def _robust(model, adv, x, y):
    with torch.no_grad():
        return float(((model(adv).argmax(1) == y) & (model(x).argmax(1) == y)).float().mean())


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd", "square"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_perturbations_stay_within_epsilon_and_the_valid_range(cnn, digits, sample, attack, norm):
    x, y = sample
    constraint = A.constraint_for(digits, cnn.model)
    eps = 0.1 if norm == "linf" else 0.5
    adv = A.run_attack(cnn.model, x, y, eps, constraint, A.AttackSettings(attack=attack, norm=norm, steps=5, queries=20))
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert size.max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert _robust(cnn.model, adv, x, y) < _robust(cnn.model, x, x, y)  # it does attack


def test_pgd_equals_torchattacks_without_random_start(cnn, sample):
    x, y = sample
    model = cnn.model.eval()
    ours = A.pgd(model, x, y, 0.1, A.Constraint(torch.tensor(0.0), torch.tensor(1.0)), steps=10, step_size=0.25, random_start=False)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.025, steps=10, random_start=False)(x, y)
    assert (ours - theirs).abs().max() <= 1e-6
    assert (ours - x).abs().max() > 0.09  # a real attack, not two copies of x


def test_apgd_is_as_strong_as_torchattacks_apgd(cnn, sample):
    """Robust accuracy at eps 0.1, 20 steps, over three seeds each: within 3 points (their random starts differ from ours)."""
    x, y = sample
    model = cnn.model.eval()
    c = A.Constraint(torch.tensor(0.0), torch.tensor(1.0))
    ours = np.mean([_robust(model, A.apgd(model, x, y, 0.1, c, steps=20, seed=s), x, y) for s in range(3)])
    theirs = np.mean([_robust(model, torchattacks.APGD(model, eps=0.1, steps=20, seed=s)(x, y), x, y) for s in range(3)])
    assert abs(ours - theirs) <= 0.03, (ours, theirs)
    pgd = _robust(model, A.pgd(model, x, y, 0.1, c, steps=20), x, y)
    assert ours <= pgd + 1 / len(x), (ours, pgd)  # the stronger default


def test_robust_accuracy_falls_as_epsilon_grows(cnn, digits, sample):
    x, y = sample
    c = A.constraint_for(digits, cnn.model)
    curve = [_robust(cnn.model, A.apgd(cnn.model, x, y, eps, c, steps=10), x, y) for eps in (0.0, 0.02, 0.05, 0.1, 0.2)]
    assert all(a >= b for a, b in zip(curve, curve[1:])), curve
    assert curve[0] > 0.9 and curve[-1] < 0.05


def test_apgd_checkpoints_follow_the_paper():
    """w_1 = 0.22 N, gaps shrinking by 0.03 N to at least 0.06 N (Croce & Hein 2020, sec. 3.2), for N = 100."""
    marks = A._apgd_checkpoints(100)
    assert marks[:4] == [22, 41, 57, 70] and np.diff(marks).min() == 6 and marks[-1] <= 100


def test_square_attack_needs_no_gradients(cnn, digits, sample):
    """Against the CNN's forward pass alone, Square Attack fools most examples at eps 0.2; the query budget bounds its calls."""
    x, y = sample
    calls = []

    def predict(batch):
        calls.append(len(batch))
        with torch.no_grad():
            return cnn.model(batch)

    adv = square(predict, x, y, 0.2, A.constraint_for(digits, cnn.model), queries=50)
    assert len(calls) <= 51 and _robust(cnn.model, adv, x, y) < 0.3


def test_a_tabular_attack_never_changes_a_categorical_column(tmp_path_factory):
    """HMDA loans: numeric columns move (within their training range); one-hot category columns stay exactly as they were."""
    from assay.data.builtin import load_builtin
    from assay.recipes import RecipeContext, make_recipe

    task = load_builtin("hmda", seed=0)
    model = make_recipe("train", {"arch": "mlp", "epochs": 2}, "t").make(
        "mlp", RecipeContext(task=task, work_dir=tmp_path_factory.mktemp("hmda"), progress=False)).model
    x, y = torch.as_tensor(task.test.x[:200]), torch.as_tensor(task.test.y[:200])
    c = A.constraint_for(task, model)
    numeric = len(task.pipeline.numeric)
    assert 0 < numeric < x.shape[1]
    for settings in (A.AttackSettings(attack="apgd", steps=5), A.AttackSettings(attack="pgd", norm="l2", steps=5),
                     A.AttackSettings(attack="square", queries=10)):
        adv = A.run_attack(model, x, y, 0.5, c, settings)
        assert torch.equal(adv[:, numeric:], x[:, numeric:]), settings.attack
        assert (adv[:, :numeric] - x[:, :numeric]).abs().max() > 0.1, settings.attack
        low, high = torch.as_tensor(task.train.x.min(0)), torch.as_tensor(task.train.x.max(0))
        assert (adv >= torch.minimum(low, x) - 1e-6).all() and (adv <= torch.maximum(high, x) + 1e-6).all()


def test_a_token_model_is_attacked_in_embedding_space():
    """A GRU over token ids: the attack returns embeddings (N, T, D) within eps x the embedding table's spread, and they fool it."""
    from assay.models import gradients as G
    from assay.models.zoo import build

    torch.manual_seed(0)
    model = build("gru", input_shape=(12,), num_classes=3, vocab_size=50, embed_dim=8, hidden=8).eval()
    ids = torch.randint(1, 50, (32, 12))
    y = G.logits_at(model, ids, G.gradient_space(model, ids)).argmax(1)  # the model's own predictions: all correct
    layer = G.embedding_layer(model)
    c = A.Constraint(scale=float(layer.weight.detach().std()), space="embedding")
    adv = A.apgd(model, ids, y, 1.0, c, steps=10)
    assert adv.shape == (32, 12, 8)
    assert (adv - layer(ids)).abs().max() <= c.scale + 1e-5
    assert (G.logits_at(model, ids, adv).argmax(1) != y).float().mean() > 0.5
    with pytest.raises(ValueError, match="token model has none"):
        square(lambda b: model(b), ids, y, 0.1, c)


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="attack = 'cw'; use one of fgsm, pgd, apgd, square"):
        A.AttackSettings(attack="cw")
    with pytest.raises(ValueError, match="norm = 'l1'; use one of linf, l2"):
        A.AttackSettings(attack="square", norm="l1")
    assert A.AttackSettings(steps=10).digest() != A.AttackSettings(steps=20).digest()
    assert A.AttackSettings(attack="square", steps=10).digest() == A.AttackSettings(attack="square", steps=20).digest()  # unused by Square
    fgsm = A.AttackSettings(attack="fgsm", steps=10).digest()
    assert fgsm == A.AttackSettings(attack="fgsm", steps=20, stop_when_fooled=False).digest()  # one step: none of these apply


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_stopping_fooled_examples_keeps_apgd_and_can_only_strengthen_pgd(cnn, sample, norm, eps):
    """APGD returns the same points with fooled examples dropped from the batch; PGD's points of fooled examples fool the
    model, stay within eps, and robust accuracy is at most the one of the last iterates, seed for seed."""
    x, y = sample
    model = cnn.model.eval()
    c = A.Constraint(torch.tensor(0.0), torch.tensor(1.0))
    full, stopped = (A.apgd(model, x, y, eps, c, norm=norm, steps=10, seed=3, stop_when_fooled=s) for s in (False, True))
    assert (full - stopped).abs().max() <= 1e-6
    for restarts in (1, 2):
        last, first = (A.pgd(model, x, y, eps, c, norm=norm, steps=10, seed=3, restarts=restarts, stop_when_fooled=s) for s in (False, True))
        assert _robust(model, first, x, y) <= _robust(model, last, x, y)
        delta = (first - x).flatten(1)
        assert (delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)).max() <= eps + 1e-5
    with pytest.raises(SpecError, match="needs the true classes"):
        A.pgd(model, x, torch.softmax(model(x), 1).detach(), eps, c, stop_when_fooled=True)


def test_each_example_may_have_its_own_epsilon(cnn, sample):
    """eps as an (N,) tensor: each example within its own radius; equal radii give the scalar's points exactly."""
    x, y = sample
    model = cnn.model.eval()
    c = A.Constraint(torch.tensor(0.0), torch.tensor(1.0))
    eps = torch.linspace(0.0, 0.2, len(x))
    for attack in ("pgd", "apgd"):
        for norm in ("linf", "l2"):
            adv = A.run_attack(model, x, y, eps, c, A.AttackSettings(attack=attack, norm=norm, steps=5))
            delta = (adv - x).flatten(1)
            size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
            assert (size <= eps + 1e-6).all(), (attack, norm)
        same = A.run_attack(model, x, y, torch.full((len(x),), 0.1), c, A.AttackSettings(attack=attack, steps=5))
        assert torch.equal(same, A.run_attack(model, x, y, 0.1, c, A.AttackSettings(attack=attack, steps=5))), attack
    with pytest.raises(SpecError, match=r"eps has shape \(3,\); give one epsilon, or one per example: shape \(128,\)"):
        A.pgd(model, x, y, torch.ones(3), c)
