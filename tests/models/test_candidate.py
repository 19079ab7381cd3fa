"""Candidates save as safetensors + JSON and load back exactly."""

import json
import subprocess
import sys

import pytest
import torch

from assay.errors import ModelError, SpecError
from assay.models import zoo
from assay.models.candidate import Candidate
from assay.models.quantized import quantize_dynamic_int8


def test_round_trip_gives_identical_logits_and_id(mlp, digits, tmp_path):
    mlp.save(tmp_path)
    loaded = Candidate.load(tmp_path, "mlp")
    x = torch.tensor(digits.test.x)
    assert torch.equal(loaded.predict(x), mlp.predict(x))
    assert loaded.id == mlp.id
    assert loaded.describe()["training"]["epochs_run"] == mlp.training["epochs_run"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_int8_round_trip_is_exact(cnn, digits, tmp_path):
    from dataclasses import replace

    child = Candidate("q", quantize_dynamic_int8(cnn.model), replace(cnn.provenance, recipe="quantize", parent="cnn", transforms=("dynamic_int8",)))
    child.save(tmp_path)
    loaded = Candidate.load(tmp_path, "q")
    x = torch.tensor(digits.test.x)
    assert torch.equal(loaded.predict(x), child.predict(x))
    assert (tmp_path / "q.safetensors").stat().st_size == len(child.to_bytes())


def test_embed_is_the_penultimate_layer(cnn, digits):
    x = torch.tensor(digits.test.x[:4])
    with torch.inference_mode():
        assert torch.allclose(cnn.model.head(cnn.embed(x)), cnn.predict(x), atol=1e-6)


def test_tampered_weights_are_refused(mlp, tmp_path):
    mlp.save(tmp_path)
    meta = json.loads((tmp_path / "mlp.json").read_text())
    meta["config"]["lr"] = 123.0
    (tmp_path / "mlp.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="content hash"):
        Candidate.load(tmp_path, "mlp")
    (tmp_path / "mlp.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read candidate"):
        Candidate.load(tmp_path, "mlp")
    with pytest.raises(ModelError, match="not found"):
        Candidate.load(tmp_path, "nope")


def test_zoo_errors_name_the_problem():
    with pytest.raises(SpecError, match="did you mean 'channels'"):
        zoo.build("cnn", input_shape=(1, 8, 8), num_classes=10, chanels=(8,))
    with pytest.raises(SpecError, match="needs images"):
        zoo.build("cnn", input_shape=(20,), num_classes=2)


@pytest.mark.parametrize("module", ["zoo", "classifier", "sequence", "pretrained", "candidate", "quantized", "exported"])
def test_each_models_module_imports_first_in_a_fresh_interpreter(module):
    # an import cycle only shows when the module in it is the first one imported
    done = subprocess.run([sys.executable, "-c", f"import assay.models.{module}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
