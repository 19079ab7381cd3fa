"""MiniLM's attention maps through the one forward pass, and the rollout read from them, against transformers' own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.checks import explainers as ex
from assay.models.forward import forward_pass

transformers = pytest.importorskip("transformers")


def test_attention_rollout_on_minilm_equals_a_hand_computation_from_transformers_attentions():
    from assay.data.text import TextPipeline, model_folder
    from assay.models.pretrained import pretrained

    model = pretrained((12,), 2)  # a probe: the frozen encoder and a linear head
    ids = TextPipeline("minilm", max_length=12).encode(["a cat sat on the mat", "links https t.co are a shortcut"])
    assert (ids == 0).any()  # the first text is padded
    setup = ex.Setup(names=[f"position {t}" for t in range(12)], groups=[np.array([t]) for t in range(12)], shape=(12,), tokens=True,
                     baseline=np.zeros_like(ids), references=ids)
    assert ex.applicable("attention_rollout", model, differentiable=True) is None
    ours = ex.attention_rollout(model, torch.as_tensor(ids), torch.zeros(2, dtype=torch.long), setup)

    # By hand, from the eager implementation's own output_attentions (sdpa returns none).
    hf = transformers.AutoModel.from_pretrained(str(model_folder("minilm")), local_files_only=True, attn_implementation="eager").eval()
    t = torch.as_tensor(ids)
    with torch.no_grad():
        maps = hf(input_ids=t, attention_mask=(t != 0).long(), output_attentions=True).attentions
    assert len(maps) == 6
    rollout = torch.eye(12, dtype=torch.float64).expand(2, 12, 12)
    for a in maps:  # (2, heads, T, T): heads averaged, the residual as 0.5 I, rows renormalised (Abnar & Zuidema 2020)
        a = 0.5 * a.double().mean(1) + 0.5 * torch.eye(12, dtype=torch.float64)
        rollout = (a / a.sum(-1, keepdim=True)) @ rollout
    kept = (t != 0).double()  # MiniLM's embedding is the mean over the kept tokens: the mean of their rows
    expected = (kept[:, :, None] * rollout).sum(1) / kept.sum(1, keepdim=True)
    print("rollout max |diff|", np.abs(ours - expected.numpy()).max())
    assert np.allclose(ours, expected.numpy(), atol=1e-5), np.abs(ours - expected.numpy()).max()
    assert np.allclose(ours.sum(1), 1.0) and (ours[ids == 0] == 0).all()  # a distribution over the kept tokens

    # The maps came through the one forward pass, and the encoder went back to its fused attention after.
    out = forward_pass(model, ids, attention=True)
    assert [tuple(m.shape) for m in out.attention] == [(2, 12, 12, 12)] * 6
    assert torch.allclose(out.logits, forward_pass(model, ids).logits, atol=1e-5)
    assert model.body.model.config._attn_implementation == "sdpa"
