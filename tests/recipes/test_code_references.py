"""Options that name code: only a ``.py`` file is joined to the study's folder; module references and zoo names stay as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assay._options import resolve_paths
from assay.errors import SpecError
from assay.recipes import RECIPES, RecipeContext, load_all, make_recipe
from assay.spec import parse_study

load_all()
STUDY = '''name = "refs"
[task]
builtin = "digits"

[[recipe]]
name = "zoo"
kind = "train"
arch = "mlp"
arch_options = { hidden = [32] }
epochs = 1
batch_size = 256

[[recipe]]
name = "file"
kind = "train"
arch = "nets/models.py:make_net"

[[recipe]]
name = "module"
kind = "train"
arch = "mynets.small:make"

[[recipe]]
name = "loaded"
kind = "load"
module = "mynets.small:Net"
weights = "net.pt"

[checks]
run = ["performance"]
'''


@pytest.mark.parametrize("value, expected", [
    ("mlp", "mlp"),                                            # a zoo name is a name
    ("models.py:make_net", "{base}/models.py:make_net"),       # a file, relative to the study
    ("nets/models.py:make_net", "{base}/nets/models.py:make_net"),
    ("/elsewhere/models.py:make_net", "/elsewhere/models.py:make_net"),  # absolute: as written
    ("mynets.small:make", "mynets.small:make"),                # an importable module is not a file
])
def test_a_code_option_joins_only_a_py_file_to_the_study_folder(value, expected, tmp_path):
    assert resolve_paths(RECIPES["train"].__init__, {"arch": value}, tmp_path) == {"arch": expected.format(base=tmp_path)}


def test_a_path_option_is_a_file_unless_it_reads_as_a_module_reference(tmp_path):
    options = {"module": "mynets.small:Net", "weights": "net.pt"}
    assert resolve_paths(RECIPES["load"].__init__, options, tmp_path) == {"module": "mynets.small:Net", "weights": str(tmp_path / "net.pt")}
    options = {"path": "models/cnn.safetensors"}
    assert resolve_paths(RECIPES["load"].__init__, options, tmp_path) == {"path": str(tmp_path / "models/cnn.safetensors")}


def test_the_study_file_keeps_zoo_names_and_module_references_and_joins_files(tmp_path):
    spec = parse_study(STUDY, path=tmp_path / "study.toml")
    options = {r.name: dict(r.options) for r in spec.recipes}
    assert options["zoo"]["arch"] == "mlp"
    assert options["file"]["arch"] == f"{tmp_path}/nets/models.py:make_net"
    assert options["module"]["arch"] == "mynets.small:make"
    assert options["loaded"] == {"module": "mynets.small:Net", "weights": str(tmp_path / "net.pt")}


def test_a_zoo_candidate_describes_its_arch_by_name_with_no_folder_in_it(digits, tmp_path):
    spec = parse_study(STUDY, path=tmp_path / "study.toml")
    zoo = next(r for r in spec.recipes if r.name == "zoo")
    recipe = make_recipe("train", zoo.options, "study.toml [[recipe]] 'zoo'")
    assert recipe.arch == "mlp" and recipe.params()["arch"] == "mlp"
    candidate = recipe.make("zoo", RecipeContext(task=digits, work_dir=tmp_path / "work", progress=False))
    candidate.save(tmp_path / "saved")
    description = json.loads((tmp_path / "saved" / "zoo.json").read_text())
    assert description["config"]["arch"] == "mlp" and description["arch"]["name"] == "mlp"
    assert str(tmp_path) not in json.dumps(description["config"])


def test_a_reference_that_is_neither_a_file_nor_a_module_is_refused_when_the_study_is_read(tmp_path):
    text = STUDY.replace('arch = "mynets.small:make"', 'arch = "nets/small:make"')
    with pytest.raises(SpecError) as error:
        parse_study(text, path=tmp_path / "study.toml")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'study.toml'} [[recipe]] 'module': ") and "neither a .py file nor a dotted module name" in message
    assert "\n" not in message and 'write "models.py:make"' in message


def test_an_unknown_zoo_name_is_named_as_written(tmp_path):
    with pytest.raises(SpecError, match=r"unknown architecture 'mlpp' \(did you mean 'mlp'\?\)"):
        parse_study(STUDY.replace('arch = "mlp"', 'arch = "mlpp"'), path=tmp_path / "study.toml")
