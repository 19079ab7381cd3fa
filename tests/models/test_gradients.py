"""The gradient helper against Captum and against itself: same numbers whatever the chunk size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from assay.models.gradients import (
    embedding_layer, gradient_shap, input_gradients, integrated_gradients, layer_gradients, smoothgrad,
)

captum = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module")
def sample(digits, cnn):
    x = torch.as_tensor(digits.test.x[:24])
    target = cnn.predict(x).argmax(1)
    return x, target


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_middle"])
def test_integrated_gradients_equal_captums(cnn, sample, method):
    x, target = sample
    baseline = torch.full_like(x, 0.1)
    ours = integrated_gradients(cnn.model, x, target, baseline, n_steps=40, method=method, chunk=100)
    theirs = captum.IntegratedGradients(cnn.model).attribute(x, baselines=baseline, target=target, n_steps=40, method=method)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0), (ours - theirs).abs().max()


def test_attributions_do_not_depend_on_the_chunk_size(cnn, sample):
    x, target = sample
    # From 2 rows up; PyTorch's CPU kernels for a batch of one row can break max-pool ties another way
    # (measured: 4e-4 on one pixel of one example of this CNN), which moves a gradient between tied pixels.
    ig = [integrated_gradients(cnn.model, x, target, n_steps=30, chunk=c) for c in (2, 7, 64, 10_000)]
    sg = [smoothgrad(cnn.model, x, target, samples=5, chunk=c) for c in (3, 1000)]
    shap = [gradient_shap(cnn.model, x, target, x[:5] * 0.5, samples=6, sigma=0.05, chunk=c) for c in (4, 1000)]
    for runs in (ig, sg, shap):
        for other in runs[1:]:
            assert torch.allclose(runs[0], other, atol=1e-6, rtol=0), [(r - runs[0]).abs().max().item() for r in runs]


def test_completeness_of_integrated_gradients_on_the_digits_cnn(cnn, sample):
    """Sum of attributions = f(x) - f(baseline) to within 1% at 200 steps (Sundararajan et al. 2017, axiom)."""
    x, target = sample
    ig = integrated_gradients(cnn.model, x, target, torch.zeros_like(x), n_steps=200)
    logits, base = cnn.predict(x), cnn.predict(torch.zeros_like(x))
    gap = (logits - base).gather(1, target[:, None])[:, 0]
    error = (ig.flatten(1).sum(1) - gap).abs() / gap.abs().clamp(min=1e-6)
    assert error.max() < 0.01, error.max()


def test_saliency_and_gradient_shap_equal_captums(cnn, sample):
    x, target = sample
    grads = input_gradients(cnn.model, x, target, chunk=5)
    assert torch.allclose(grads.abs(), captum.Saliency(cnn.model).attribute(x, target=target), atol=1e-6)
    # GradientSHAP against its definition: mean over samples of grad(b + a (x - b)) * (x - b), with our draws of a.
    bank = torch.zeros_like(x[:1])
    ours = gradient_shap(cnn.model, x, target, bank, samples=4, seed=3, chunk=9)
    g = torch.Generator().manual_seed(3)
    torch.randint(1, (len(x), 4), generator=g)
    alpha = torch.rand((len(x), 4), generator=g)
    expected = sum(input_gradients(cnn.model, alpha[:, s].view(-1, 1, 1, 1) * x, target) * x for s in range(4)) / 4
    assert torch.allclose(ours, expected, atol=1e-6)


def test_token_models_get_gradients_at_the_embedding_output(digits):
    """A GRU over token ids: IG at the embedding layer equals Captum's LayerIntegratedGradients there."""
    from assay.models.zoo import build

    torch.manual_seed(0)
    model = build("gru", input_shape=(12,), num_classes=3, vocab_size=50, embed_dim=8, hidden=8).eval()
    ids = torch.randint(1, 50, (6, 12))
    ids[:, 9:] = 0  # padding
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    ours = integrated_gradients(model, ids, target, torch.zeros_like(ids), n_steps=25, chunk=17)
    layer = embedding_layer(model)
    theirs = captum.LayerIntegratedGradients(model, layer).attribute(ids, baselines=torch.zeros_like(ids), target=target, n_steps=25)
    assert ours.shape == (6, 12, 8)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    assert ours[:, 9:].abs().max() == 0  # padding positions carry nothing
    loss = input_gradients(model, ids, target, loss=lambda z, y: nn.functional.cross_entropy(z, y, reduction="none"))
    assert loss.shape == (6, 12, 8) and loss.abs().sum() > 0


def test_layer_gradients_follow_the_hooked_layer(cnn, sample):
    x, target = sample
    relu = [m for m in cnn.model.modules() if isinstance(m, nn.ReLU)][-1]
    acts, grads = layer_gradients(cnn.model, x, target, relu, chunk=7)
    assert acts.shape == grads.shape and acts.shape[0] == len(x)
    # The head is linear after global average pooling: d logit / d activation = w[target] / (H W) at every position.
    w = cnn.model.head.weight[target]  # (N, C)
    expected = (w / (acts.shape[2] * acts.shape[3]))[:, :, None, None].expand_as(grads)
    assert np.allclose(grads.numpy(), expected.detach().numpy(), atol=1e-6)
