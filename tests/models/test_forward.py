"""The one forward pass: the same numbers as the model, any batch size, memory bounded by the batch."""

import numpy as np
import pytest
import torch

from assay.errors import ModelError
from assay.models import zoo
from assay.models.forward import forward_pass, has_attention


def test_logits_and_features_match_the_model_at_any_batch_size(mlp, digits):
    x = torch.tensor(digits.test.x)
    with torch.no_grad():
        logits, feats = mlp.model.logits_and_features(x)
    for batch in (1, 7, 1000):
        out = forward_pass(mlp.model, digits.test.x, batch_size=batch, features=True)
        torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.features, feats, rtol=1e-5, atol=1e-5)
    only = forward_pass(mlp.model, digits.test.x, logits=False, features=True)
    assert only.logits is None and only.features.shape == feats.shape


def test_features_handed_to_a_sink_arrive_in_row_order_and_are_not_kept(mlp, digits):
    whole = forward_pass(mlp.model, digits.test.x, batch_size=50, features=True)
    got = []
    out = forward_pass(mlp.model, digits.test.x, batch_size=50, features_to=lambda start, f: got.append((start, f)))
    assert out.features is None and torch.equal(out.logits, whole.logits)
    assert [start for start, _ in got] == list(range(0, len(digits.test), 50))
    assert all(f.dtype == torch.float32 and f.device.type == "cpu" for _, f in got)
    assert torch.equal(torch.cat([f for _, f in got]), whole.features)


def test_the_pass_leaves_each_module_in_the_mode_it_found():
    model = zoo.build("mlp", input_shape=(8,), num_classes=3, hidden=[4])
    model.train()
    model.head.eval()
    forward_pass(model, np.zeros((5, 8), np.float32))
    assert model.training and model.body.training and not model.head.training


def _transformer():
    torch.manual_seed(0)
    return zoo.build("transformer", input_shape=(12,), num_classes=3, vocab_size=50, dim=16, depth=2, heads=2).eval()


def test_attention_is_returned_by_the_call_that_asked_for_it():
    model = _transformer()
    ids = torch.randint(1, 50, (10, 12))
    ids[:, 9:] = 0  # padding
    out = forward_pass(model, ids, batch_size=4, attention=True, features=True)
    assert len(out.attention) == 2 and out.attention[0].shape == (10, 2, 13, 13)
    torch.testing.assert_close(out.attention[0].sum(-1), torch.ones(10, 2, 13))  # each query's weights sum to 1
    assert float(out.attention[1][:, :, :, 10:].abs().max()) == 0.0  # padded keys get no weight
    # Another call in between does not change what the first one returned, and nothing stays on the module.
    first = [a.clone() for a in out.attention]
    forward_pass(model, torch.randint(1, 50, (3, 12)), attention=True)
    assert all(torch.equal(a, b) for a, b in zip(first, out.attention))
    assert not any(isinstance(v, torch.Tensor) and v.dim() == 4 for m in model.modules() for v in vars(m).values())
    # The features are the model's own: asking for attention does not change them.
    torch.testing.assert_close(out.features, forward_pass(model, ids, features=True).features, rtol=1e-5, atol=1e-5)


def test_attention_asked_of_a_model_without_it_is_refused(mlp, digits):
    assert has_attention(_transformer()) and not has_attention(mlp.model)
    with pytest.raises(ModelError, match="no attention weights"):
        forward_pass(mlp.model, digits.test.x, attention=True)


def _rss_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(field)


def _peak_growth_mb(fn) -> float:
    """Peak resident memory during ``fn()`` above the resident memory before it (Linux: VmHWM reset through clear_refs)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets the peak (VmHWM) to the current resident size
    before = _rss_kb("VmRSS")
    result = fn()
    return (_rss_kb("VmHWM") - before) / 1024, result


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_of_encoding_a_split_does_not_grow_with_its_size():
    torch.manual_seed(0)
    model = zoo.build("cnn", input_shape=(1, 40), num_classes=10, channels=[64, 128, 256]).eval()
    large = np.random.default_rng(0).standard_normal((20_000, 1, 40)).astype(np.float32)
    small = large[:2_000].copy()  # two splits ten times apart, both already in memory
    encode = lambda x: forward_pass(model, x, batch_size=128, logits=False, features=True).features  # noqa: E731
    encode(small[:256])  # warm-up: kernels and allocator pools exist before measuring
    grew_small, out_small = _peak_growth_mb(lambda: encode(small))
    grew_large, out_large = _peak_growth_mb(lambda: encode(large))
    outputs_mb = (out_large.nbytes - out_small.nbytes) / 2**20  # the result itself must grow: (N, D) features
    print(f"peak growth: {grew_small:.1f} MB for 2,000 rows, {grew_large:.1f} MB for 20,000 (outputs {outputs_mb:.1f} MB more)")
    assert grew_large <= grew_small + outputs_mb + 8, (grew_small, grew_large, outputs_mb)
    # The measurement can see growth: the whole large split in one batch (what selfsup did) needs far more.
    whole, _ = _peak_growth_mb(lambda: forward_pass(model, large, batch_size=len(large), logits=False, features=True).features)
    assert whole > grew_large + 200, (whole, grew_large)
