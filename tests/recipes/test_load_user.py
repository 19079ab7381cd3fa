"""kind = "load" of the user's own files: a module with its state dict, a skops model; nothing in a file runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from assay.errors import AssayError, ModelError, SpecError
from assay.models.candidate import Candidate
from assay.recipes import RecipeContext, make_recipe

NET = '''
from torch import nn


class Net(nn.Module):
    def __init__(self, hidden=24):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.layers(x)
'''


@pytest.fixture()
def user_net(tmp_path, monkeypatch):
    """The user's class, written next to the study, and an instance with its own random weights."""
    (tmp_path / "nets.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    torch.manual_seed(1)
    return importlib.import_module("nets").Net(hidden=24)


def _load(task, options: dict, work) -> Candidate:
    recipe = make_recipe("load", options, "study.toml [[recipe]] 'net'")
    recipe.check_task(task, "study.toml [[recipe]] 'net'")
    return recipe.make("net", RecipeContext(task=task, work_dir=work, progress=False))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_a_module_with_its_state_dict_predicts_as_the_users_model_and_saves(digits, tmp_path, user_net, suffix):
    weights = tmp_path / f"net{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(user_net.state_dict(), str(weights))
    else:
        torch.save(user_net.state_dict(), weights)
    candidate = _load(digits, {"module": f"{tmp_path / 'nets.py'}:Net", "weights": str(weights), "arch_options": {"hidden": 24}}, tmp_path)
    x = torch.as_tensor(digits.test.x, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(candidate.predict(x), user_net.eval()(x))
    assert not candidate.capabilities.features and candidate.provenance.arch["with_shape"] is False
    candidate.save(tmp_path / "saved")
    again = Candidate.load(tmp_path / "saved", "net")
    assert again.id == candidate.id and torch.equal(again.predict(x), candidate.predict(x))


class Sentinel:
    """Unpickling it would write a file: proof that loading ran code."""

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "ran"))


def test_a_pickled_model_is_refused_and_nothing_in_it_runs(digits, tmp_path, user_net):
    sentinel = Sentinel()
    sentinel.marker = str(tmp_path / "ran.txt")
    torch.save({"model": user_net, "trap": sentinel}, tmp_path / "whole.pt")
    with pytest.raises(ModelError, match=r"needs code to load .* save the state dict instead: torch.save\(model.state_dict\(\), \"net.pt\"\)") as error:
        _load(digits, {"module": f"{tmp_path / 'nets.py'}:Net", "weights": str(tmp_path / "whole.pt")}, tmp_path)
    assert "\n" not in str(error.value) and not (tmp_path / "ran.txt").exists()


def test_weights_that_do_not_fit_the_class_name_both(digits, tmp_path, user_net):
    torch.save(user_net.state_dict(), tmp_path / "net.pt")
    with pytest.raises(ModelError, match="the weights do not fit .*nets.py:Net .*size mismatch.*give the class and arch_options they were saved from"):
        _load(digits, {"module": f"{tmp_path / 'nets.py'}:Net", "weights": str(tmp_path / "net.pt"), "arch_options": {"hidden": 8}}, tmp_path)
    torch.save({"epoch": 3, "state": user_net.state_dict()}, tmp_path / "ckpt.pt")
    with pytest.raises(ModelError, match=r"holds a dict with keys \['epoch', 'state'\], not a state dict"):
        _load(digits, {"module": f"{tmp_path / 'nets.py'}:Net", "weights": str(tmp_path / "ckpt.pt")}, tmp_path)


@pytest.mark.parametrize("options, expected", [
    ({"path": "m.pt"}, "unknown model format '.pt' on its own: a PyTorch state dict needs its class"),
    ({"path": "model.pkl"}, 'skops.io.dump(joblib.load("model.pkl"), "model.skops")'),
    ({"path": "model.joblib"}, "a pickle/joblib file can run code when loaded"),
])
def test_files_that_cannot_load_alone_say_what_to_do(digits, tmp_path, options, expected):
    (tmp_path / "m.pt").write_bytes(b"x")
    options = {"path": str(tmp_path / options["path"])}
    with pytest.raises(ModelError) as error:
        make_recipe("load", options, "x").check_task(digits, "x")
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("options, expected", [
    ({"module": "nets.py:Net"}, "needs weights"),
    ({"path": "a.safetensors", "module": "nets.py:Net", "weights": "w.pt"}, "give either path"),
    ({"path": "a.safetensors", "weights": "w.pt"}, "'weights' goes with module"),
    ({"path": "a.onnx", "trusted": ["x.Y"]}, "'trusted' applies to a .skops file only"),
])
def test_option_combinations_are_refused_when_the_study_is_read(options, expected):
    with pytest.raises(SpecError, match=expected):
        make_recipe("load", options, "study.toml [[recipe]] 'net'")


def test_a_skops_model_loads_with_its_trusted_types_and_is_judged_through_predict_proba(digits, tmp_path):
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    flat = np.asarray(digits.train.x, np.float64).reshape(len(digits.train), -1)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(flat, digits.train.y)
    sio.dump(forest, tmp_path / "forest.skops")
    with pytest.raises(ModelError, match=r'holds types skops does not trust by default \("sklearn.tree._tree.Tree"\); if you trust this file, add trusted = \["sklearn.tree._tree.Tree"\]'):
        _load(digits, {"path": str(tmp_path / "forest.skops")}, tmp_path)
    candidate = _load(digits, {"path": str(tmp_path / "forest.skops"), "trusted": ["sklearn.tree._tree.Tree"]}, tmp_path)
    x = np.asarray(digits.test.x)
    probs = torch.softmax(candidate.predict(torch.as_tensor(x, dtype=torch.float32)), 1).double().numpy()
    np.testing.assert_allclose(probs, forest.predict_proba(x.reshape(len(x), -1)), atol=1e-6)
    assert not candidate.capabilities.differentiable and not candidate.capabilities.features
    (tmp_path / "bad.skops").write_bytes(b"not a zip")
    with pytest.raises(AssayError, match="cannot read it as a skops file"):
        _load(digits, {"path": str(tmp_path / "bad.skops")}, tmp_path)


def test_module_paths_follow_the_study_file(tmp_path):
    from assay._options import resolve_paths
    from assay.recipes import RECIPES

    options = resolve_paths(RECIPES["load"].__init__, {"module": "nets.py:Net", "weights": "net.pt"}, tmp_path)
    assert options == {"module": f"{tmp_path}/nets.py:Net", "weights": f"{tmp_path}/net.pt"}
