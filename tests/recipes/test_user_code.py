"""The user's own architecture in a study file: trained by the one loop, interrupted and resumed, reloaded, refused in one line."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from assay.cli import main
from assay.models.candidate import Candidate
from assay.recipes import RecipeContext, make_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Interrupt(Exception):
    pass


def _only(spec_text: str, keep: str) -> str:
    """The example study with only the recipe ``keep`` (the others are built-ins, tested elsewhere) and one cheap check."""
    head, *tables = spec_text.split("[[recipe]]")
    mine = next(t for t in tables if f'name = "{keep}"' in t)
    mine = mine.replace("epochs = 15", "epochs = 3").replace("width = 16, blocks = 2", "width = 8, blocks = 1")  # seconds, not a minute, on 2 cores
    return head + "[[recipe]]" + mine.split("[checks]")[0] + '[checks]\nrun = ["performance"]\nn_boot = 100\n'



def test_custom_arch_example_is_interrupted_resumes_and_reloads_with_kind_load(tmp_path):
    """examples/custom_arch.toml: stopped after the user network's first epoch, resumed to the same weights, loaded back unchanged."""
    from assay.spec import load_study, parse_study
    from assay.study import Study

    spec = load_study(EXAMPLES / "custom_arch.toml")
    resnet = next(r for r in spec.recipes if r.name == "resnet")
    assert resnet.options["arch"] == str(EXAMPLES / "custom_arch_models.py") + ":small_resnet"  # relative to the study file
    spec = parse_study(_only(spec.text, "resnet"), path=EXAMPLES / "custom_arch.toml")
    resnet = next(r for r in spec.recipes if r.name == "resnet")
    epochs = []

    def stop_after_first(epoch, row):
        epochs.append(epoch)
        raise Interrupt

    with pytest.raises(Interrupt):
        Study(spec, out=tmp_path / "runs", progress=False, device="cpu").run(on_epoch_end=stop_after_first)
    result = Study(spec, out=tmp_path / "runs", progress=False, device="cpu").run(on_epoch_end=lambda e, r: epochs.append(e))
    assert result.resumed and epochs == [1, 2, 3]  # epoch 1 once, then 2 and 3 from the checkpoint

    saved = result.run_dir / "candidates" / "resnet.safetensors"
    if not saved.is_file():
        saved = next(result.run_dir.rglob("resnet.safetensors"))
    resumed = Candidate.load(saved.parent, "resnet")
    task = _digits()
    straight = make_recipe("train", resnet.options, "test").make("resnet", RecipeContext(task=task, work_dir=tmp_path / "straight", progress=False))
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert resumed.provenance.arch["name"] == "user" and len(resumed.provenance.arch["sha256"]) == 64
    assert resumed.capabilities.features  # small_resnet has features(x) and a head

    load = make_recipe("load", {"path": str(saved)}, "test")
    load.check_task(task, "test")
    loaded = load.make("again", RecipeContext(task=task, work_dir=tmp_path / "load", progress=False))
    x = torch.as_tensor(task.test.x, dtype=torch.float32)
    assert torch.equal(loaded.predict(x), resumed.predict(x))
    assert "source_changed" not in loaded.training


def _digits():
    from assay.data.builtin import load_builtin

    return load_builtin("digits", seed=0)


PLAIN = '''
import torch
from torch import nn


def make(input_shape, num_classes, *, hidden=32):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
'''


def _train(task, arch: str, work: Path, **options) -> Candidate:
    recipe = make_recipe("train", {"arch": arch, "epochs": 2, **options}, "study.toml [[recipe]] 'mine'")
    recipe.check_task(task, "study.toml [[recipe]] 'mine'")
    return recipe.make("mine", RecipeContext(task=task, work_dir=work, progress=False))


def test_a_module_without_features_says_so_and_a_changed_source_warns_on_reload(tmp_path, caplog):
    task = _digits()
    code = tmp_path / "nets.py"
    code.write_text(PLAIN)
    candidate = _train(task, f"{code}:make", tmp_path / "work", arch_options={"hidden": 16})
    caps = candidate.capabilities
    assert caps.differentiable and not caps.features and caps.lacks("features")
    assert candidate.provenance.arch["options"] == {"hidden": 16}
    candidate.save(tmp_path / "saved")
    assert "source_changed" not in Candidate.load(tmp_path / "saved", "mine").training

    code.write_text(PLAIN + "\n# edited since\n")
    with caplog.at_level(logging.WARNING, logger="assay"):
        again = Candidate.load(tmp_path / "saved", "mine")
    assert "source file changed since this candidate was saved" in again.training["source_changed"]
    assert any("changed since" in r.getMessage() for r in caplog.records)
    x = torch.as_tensor(task.test.x[:8], dtype=torch.float32)
    assert torch.equal(again.predict(x), candidate.predict(x))  # the same weights, in today's code


def test_an_importable_module_reference_is_not_taken_for_a_file(tmp_path, monkeypatch):
    from assay._options import resolve_paths
    from assay.recipes import RECIPES

    package = tmp_path / "lib" / "mynets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "small.py").write_text(PLAIN)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    options = resolve_paths(RECIPES["train"].__init__, {"arch": "mynets.small:make"}, tmp_path / "study_dir")  # as the study loader does
    candidate = _train(_digits(), options["arch"], tmp_path / "work")
    assert candidate.provenance.arch["sha256"] and candidate.provenance.arch["code"].endswith("mynets.small:make")
    builtin = resolve_paths(RECIPES["train"].__init__, {"arch": "mlp"}, tmp_path)
    assert make_recipe("train", builtin, "x").arch == "mlp"  # a zoo name stays a zoo name


RECIPE = 'name = "mine"\nkind = "train"\narch = "nets.py:make"\nepochs = 1'
BAD = [
    ("missing-file", {}, RECIPE, ("nets.py: file not found", "next to the study file")),
    ("no-callable", {"nets.py": "def maker(a, b):\n    pass\n"}, RECIPE, ("has no callable 'make'", "did you mean 'maker'")),
    ("import-raises", {"nets.py": "import not_a_module_anywhere\n"}, RECIPE, ("importing", "ModuleNotFoundError", "fix that module")),
    ("callable-raises", {"nets.py": "def make(shape, k):\n    raise RuntimeError('boom')\n"}, RECIPE, ("raised RuntimeError: boom", "fix the callable")),
    ("not-a-module", {"nets.py": "def make(shape, k):\n    return 3\n"}, RECIPE, ("returned a int, not a torch.nn.Module",)),
    ("wrong-shape", {"nets.py": PLAIN.replace("num_classes)", "num_classes + 1)")}, RECIPE, ("gives outputs of shape (2, 11)", "expected (2, 10)")),
    ("bad-option", {"nets.py": PLAIN}, RECIPE + "\narch_options = { width = 3 }", ("cannot be called with", "width=3", "change arch_options")),
    ("forward-raises", {"nets.py": PLAIN.replace("nn.Flatten(), ", "")}, RECIPE, ("raised RuntimeError", "batch of shape (2, 1, 8, 8)")),
]


@pytest.mark.parametrize("files, recipe, expected", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_user_code_that_cannot_train_is_refused_in_one_line_before_anything_runs(tmp_path, capsys, monkeypatch, files, recipe, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study.toml").write_text(f'name = "bad"\n[task]\nbuiltin = "digits"\n[[recipe]]\n{recipe}\n[checks]\nrun = ["performance"]\nn_boot = 100\n')
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    code = main(["run", str(tmp_path / "study.toml"), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("assay: error: "), err
    assert "[[recipe]] 'mine'" in err[0]
    for fragment in expected:
        assert fragment in err[0], f"{fragment!r} not in: {err[0]}"
    runs = tmp_path / "runs"
    assert not runs.is_dir() or not any(p.is_dir() for p in runs.iterdir()), "a run folder was written"


def test_the_example_file_is_copied_as_a_user_would(tmp_path):
    """A study copied elsewhere with its models file keeps working: the reference is relative to the study, not the working directory."""
    from assay.spec import load_study

    for name in ("custom_arch.toml", "custom_arch_models.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    spec = load_study(tmp_path / "custom_arch.toml")
    options = next(r for r in spec.recipes if r.name == "resnet").options
    recipe = make_recipe("train", options, "x")
    recipe.check_task(_digits(), "x")
    assert type(recipe._user_model(_digits(), "x").net).__name__ == "SmallResNet"
