"""The shared prediction cache: one forward pass per (candidate, split, view)."""

import warnings

import numpy as np
import pytest
import torch

from assay.checks.predictions import PredictionCache


def test_a_second_request_does_not_run_the_model(mlp, digits, tmp_path, monkeypatch):
    cache = PredictionCache(tmp_path)
    first = cache.get(mlp, digits)
    calls = []
    real = mlp.model.forward
    monkeypatch.setattr(mlp.model, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert cache.get(mlp, digits) is first
    # A new cache over the same folder reads the predictions back from disk.
    again = PredictionCache(tmp_path).get(mlp, digits)
    assert not calls
    assert np.array_equal(again.logits, first.logits)
    PredictionCache(None).get(mlp, digits)  # negative control: a cache with nothing stored runs the model
    assert calls


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


def _forged(path, z):
    """The issue's case: a 5-row, 3-class file in place of the real one."""
    np.savez(path, logits=np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]], labels=np.array([0, 1, 2, 0, 1]))


def _old_format(path, z):
    np.savez(path, logits=z["logits"], labels=z["labels"])


def _edited(path, z):
    logits = z["logits"].copy()
    logits[:, 0] += 100.0  # every prediction becomes class 0
    np.savez(path, logits=logits, labels=z["labels"], about=z["about"])


def _other_split(path, z):
    path.write_bytes(path.with_name(path.name.replace("-test-", "-val-")).read_bytes())


def _truncated(path, z):
    path.write_bytes(path.read_bytes()[:200])


def _more_rows(path, z):
    np.savez(path, logits=np.concatenate([z["logits"], z["logits"]]), labels=np.concatenate([z["labels"], z["labels"]]), about=z["about"])


@pytest.mark.parametrize("spoil", [_forged, _old_format, _edited, _other_split, _truncated, _more_rows], ids=lambda f: f.__name__[1:])
def test_a_bad_predictions_file_is_recomputed_and_overwritten(mlp, digits, tmp_path, spoil):
    cache = PredictionCache(tmp_path)
    cache.get(mlp, digits, split="val")
    good = cache.get(mlp, digits).logits
    path = next(tmp_path.rglob("*-test-clean.npz"))
    with np.load(path) as z:
        spoil(path, {k: z[k] for k in z.files})
    with pytest.warns(UserWarning, match=r"recomputing these predictions"):
        again = PredictionCache(tmp_path).get(mlp, digits)
    np.testing.assert_array_equal(again.logits, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file was overwritten with sound predictions
        np.testing.assert_array_equal(PredictionCache(tmp_path).get(mlp, digits).logits, good)


def test_adversarial_views_are_made_once_per_source_and_settings_and_checked_on_reading(mlp, cnn, digits, tmp_path):
    """adv:NAME@EPS[:from=SOURCE]: keyed by the candidates and the attack's settings; a file for other rows is recomputed."""
    from assay.checks.predictions import Adversary
    from assay.errors import ModelError, SpecError
    from assay.models.attacks import AttackSettings

    rows = np.arange(0, 60, 3)
    fgsm = Adversary(AttackSettings(attack="fgsm"), rows=rows)
    cache = PredictionCache(tmp_path)
    own = cache.get(cnn, digits, view="adv:fgsm@0.1", adversary=fgsm)
    assert own.logits.shape == (20, 10) and np.array_equal(own.rows, rows) and np.array_equal(own.labels, digits.test.y[rows])
    assert own.inputs.shape == (4, 1, 8, 8) and np.abs(own.inputs - digits.test.x[rows[:4]]).max() <= 0.1 + 1e-6
    # The CNN's examples shown to the MLP: generated once (the CNN's own view made them), the MLP's file names the CNN.
    spent = cache.attack_seconds
    moved = cache.get(mlp, digits, view="adv:fgsm@0.1:from=cnn", adversary=Adversary(fgsm.settings, rows=rows, source=cnn))
    assert cache.attack_seconds == spent
    x_adv = torch.as_tensor(own.inputs)
    np.testing.assert_allclose(moved.logits[:4], mlp.predict(x_adv).numpy(), atol=1e-5)
    assert [p.name for p in (tmp_path / mlp.id).iterdir()][0].count(cnn.id) == 1
    # Other settings are another view; the same ones on a fresh cache are read back from disk.
    longer = cache.get(cnn, digits, view="adv:pgd@0.1", adversary=Adversary(AttackSettings(attack="pgd", steps=3), rows=rows))
    assert cache.attack_seconds > spent and len(list((tmp_path / cnn.id).iterdir())) == 2
    again = PredictionCache(tmp_path)
    assert np.array_equal(again.get(cnn, digits, view="adv:pgd@0.1", adversary=Adversary(AttackSettings(attack="pgd", steps=3), rows=rows)).logits,
                          longer.logits) and again.attack_seconds == 0
    # A stored file claiming other rows is not trusted.
    path = next((tmp_path / cnn.id).glob("*adv-pgd*"))
    with np.load(path) as z:
        arrays = dict(z)
    arrays["rows"] = arrays["rows"][::-1].copy()
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="other rows of the split than those attacked"):
        PredictionCache(tmp_path).get(cnn, digits, view="adv:pgd@0.1", adversary=Adversary(AttackSettings(attack="pgd", steps=3), rows=rows))
    with pytest.raises(SpecError, match="pass it as the Adversary's source"):
        cache.get(mlp, digits, view="adv:fgsm@0.1:from=cnn")
    with pytest.raises(SpecError, match="unknown attack 'cw'"):  # the cache parses with the attacks' registry
        cache.get(cnn, digits, view="adv:cw@0.1")
    # A check may also ask for an adv: view by name: prefetch makes it per candidate (default settings, every row), never apply_view.
    fresh = PredictionCache(None)
    fresh.prefetch([cnn], digits, {("test", "adv:fgsm@0.05", False)})
    spent = fresh.attack_seconds
    assert spent > 0 and len(fresh.get(cnn, digits, view="adv:fgsm@0.05").labels) == len(digits.test) and fresh.attack_seconds == spent
    from assay.models.candidate import Candidate

    frozen = Candidate("no-grad", cnn.model, cnn.provenance)
    frozen.model.differentiable = False
    try:
        with pytest.raises(ModelError, match="use adv:square@0.1 or a transfer view"):
            cache.get(frozen, digits, view="adv:apgd@0.1")
    finally:
        del frozen.model.differentiable


def test_features_stream_to_their_own_file_and_are_read_back_memory_mapped(mlp, digits, tmp_path):
    """The training split's features: written batch by batch beside the .npz, read back as a read-only map, equal to the pass's."""
    in_memory = PredictionCache(None, batch_size=100).get(mlp, digits, split="train", embeddings=True)
    assert not isinstance(in_memory.embeddings, np.memmap)  # a cache without a folder keeps them in memory, as before
    computed = PredictionCache(tmp_path, batch_size=100).get(mlp, digits, split="train", embeddings=True)
    again = PredictionCache(tmp_path).get(mlp, digits, split="train", embeddings=True)
    for p in (computed, again):
        assert isinstance(p.embeddings, np.memmap) and not p.embeddings.flags.writeable
        np.testing.assert_array_equal(p.embeddings, in_memory.embeddings)
        np.testing.assert_array_equal(p.logits, in_memory.logits)
    with torch.no_grad():
        np.testing.assert_allclose(again.embeddings, mlp.model.features(torch.tensor(digits.train.x)).numpy(), rtol=1e-5, atol=1e-5)
    names = sorted(p.name for p in (tmp_path / mlp.id).iterdir())
    assert len(names) == 2 and names[0].endswith("-train-clean.features.npy") and names[1].endswith("-train-clean.npz")
    with np.load(tmp_path / mlp.id / names[1]) as z:
        assert "embeddings" not in z.files  # the .npz keeps logits and labels; the features are only in their own file


def test_a_pass_that_fails_midway_leaves_no_features_file(mlp, digits, tmp_path, monkeypatch):
    real, seen = mlp.model.logits_and_features, []

    def failing(x):
        seen.append(len(x))
        if len(seen) == 3:
            raise KeyboardInterrupt  # as a user's Ctrl-C in the middle of the pass
        return real(x)

    monkeypatch.setattr(mlp.model, "logits_and_features", failing)
    with pytest.raises(KeyboardInterrupt):
        PredictionCache(tmp_path, batch_size=100).get(mlp, digits, split="train", embeddings=True)
    assert len(seen) == 3 and [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no half file, no temporary one


def _features_truncated(path):
    path.write_bytes(path.read_bytes()[:-4096])


def _features_altered(path):
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one byte of one feature
    path.write_bytes(bytes(data))


def _features_missing(path):
    path.unlink()


def _features_swapped(path):
    path.write_bytes(next(path.parent.glob("*-val-clean.features.npy")).read_bytes())


@pytest.mark.parametrize("spoil", [_features_truncated, _features_altered, _features_missing, _features_swapped], ids=lambda f: f.__name__[10:])
def test_a_damaged_features_file_is_refused_and_recomputed(mlp, digits, tmp_path, spoil):
    cache = PredictionCache(tmp_path)
    cache.get(mlp, digits, split="val", embeddings=True)
    good = cache.get(mlp, digits, embeddings=True).embeddings.copy()
    spoil(next(tmp_path.rglob("*-test-clean.features.npy")))
    assert np.array_equal(PredictionCache(tmp_path).get(mlp, digits).logits, cache.get(mlp, digits).logits)  # logits alone: no need to read them
    with pytest.warns(UserWarning, match=r"features file .*recomputing these predictions"):
        again = PredictionCache(tmp_path).get(mlp, digits, embeddings=True)
    np.testing.assert_array_equal(again.embeddings, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file was rewritten with sound features
        np.testing.assert_array_equal(PredictionCache(tmp_path).get(mlp, digits, embeddings=True).embeddings, good)
