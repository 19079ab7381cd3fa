"""Compression end to end from the command line: relative gates, and ``assay compress`` on a saved model."""

import pytest

from test_cli import _one_line_error, assay

STUDY = """
name = "gates"
seed = 0
[task]
builtin = "digits"
[[recipe]]
name = "mlp"
kind = "train"
arch = "mlp"
epochs = 5
[[recipe]]
name = "mlp-wrecked"
kind = "prune"
parent = "mlp"
method = "magnitude"
sparsity = 0.97
epochs_per_step = 0
{extra}
[checks]
run = ["performance", "comparison"]
n_boot = 200
[policy]
gates = ["accuracy_drop <= 0.01"]
"""

INT8 = """
[[recipe]]
name = "mlp-int8"
kind = "quantize"
parent = "mlp"
"""


@pytest.mark.parametrize("extra, code, chosen", [("", 1, None), (INT8, 0, "mlp-int8")])
def test_relative_gates_exit_1_when_every_variant_loses_too_much(tmp_path, extra, code, chosen):
    study = tmp_path / "gates.toml"
    study.write_text(STUDY.format(extra=extra))
    out = assay("run", str(study), "--out", str(tmp_path / "runs"), "--quiet")
    assert out.returncode == code, out.stderr
    assert ("ship " + chosen if chosen else "no candidate passes the gates") in out.stdout
    assert "mlp-wrecked: accuracy_drop <= 0.01" in out.stdout or chosen  # the failure is named
    assert [line.split()[-1] for line in out.stdout.splitlines() if line.lstrip("* ").startswith("mlp ")] == ["reference"]


def test_compress_a_saved_candidate(tmp_path):
    study = tmp_path / "one.toml"
    study.write_text(STUDY.split("[[recipe]]\nname = \"mlp-wrecked\"")[0] + '[checks]\nrun = ["performance"]\n')
    assert assay("run", str(study), "--out", str(tmp_path / "runs"), "--quiet").returncode == 0
    saved = next((tmp_path / "runs").glob("gates-*/candidates/mlp.safetensors"))
    out = assay("compress", str(saved), "--task", "digits", "--out", str(tmp_path / "runs"), "--quiet")
    assert out.returncode in (0, 1), out.stderr
    for variant in ("mlp-int8", "mlp-ort", "mlp-ort-int8", "mlp-pruned", "mlp-student"):
        assert variant in out.stdout
    report = next((tmp_path / "runs").glob("compress-mlp-*/report.html")).read_text()
    assert "Compression: what each variant lost" in report and 'id="fig-pareto' in report
    assert (tmp_path / "runs" / "compress-mlp.toml").is_file()  # the study it ran, to edit and re-run


def test_compress_names_a_missing_model(tmp_path):
    line = _one_line_error(assay("compress", str(tmp_path / "nope.safetensors"), "--task", "digits", "--out", str(tmp_path / "runs")))
    assert "nope" in line and "not found" in line


def test_compressing_a_compressed_parent_is_refused_before_training(tmp_path):
    study = tmp_path / "twice.toml"
    study.write_text(STUDY.split("[[recipe]]\nname = \"mlp-wrecked\"")[0] + INT8
                     + '[[recipe]]\nname = "p"\nkind = "prune"\nparent = "mlp-int8"\n[checks]\nrun = ["performance"]\n')
    line = _one_line_error(assay("run", str(study), "--out", str(tmp_path / "runs")))
    assert "'p'" in line and "mlp-int8" in line and "already compressed" in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("gates-*/candidates/*.safetensors"))
