"""The shared prediction cache: one forward pass per (candidate, split, view)."""

import numpy as np
import torch

from assay.checks.predictions import PredictionCache


def test_a_second_request_does_not_run_the_model(mlp, digits, tmp_path, monkeypatch):
    cache = PredictionCache(tmp_path)
    first = cache.get(mlp, digits)
    calls = []
    monkeypatch.setattr(mlp, "forward", lambda *a, **k: calls.append(1))
    assert cache.get(mlp, digits) is first
    # A new cache over the same folder reads the predictions back from disk.
    again = PredictionCache(tmp_path).get(mlp, digits)
    assert not calls
    assert np.array_equal(again.logits, first.logits)


def test_logits_match_the_model_and_do_not_depend_on_batch_size(mlp, digits):
    x = torch.tensor(digits.test.x)
    expected = mlp.predict(x).numpy()
    for batch in (1, 7, 512):
        got = PredictionCache(None, batch_size=batch).get(mlp, digits).logits
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_embeddings_come_from_the_same_pass(mlp, digits, tmp_path):
    cache = PredictionCache(tmp_path)
    p = cache.get(mlp, digits, embeddings=True)
    assert p.embeddings.shape == (len(digits.test), 128)
    head = mlp.model.head
    logits = head(torch.tensor(p.embeddings)).detach().numpy()
    np.testing.assert_allclose(logits, p.logits, atol=1e-5)
    assert cache.get(mlp, digits) is p  # logits-only requests reuse it
