"""The command line as a user meets it: exit codes, one-line errors, speed."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FAST_STUDY = """
name = "fast"
seed = 0
[task]
builtin = "digits"
[[recipe]]
name = "mlp"
kind = "train"
arch = "mlp"
epochs = 3
[checks]
run = ["performance", "calibration"]
n_boot = 200
[policy]
gates = [{gate}]
"""


def assay(*args, cwd=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "assay", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_help_is_fast_and_import_pulls_no_optional_library():
    started = time.perf_counter()
    out = assay("--help")
    assert out.returncode == 0 and "demo" in out.stdout
    assert time.perf_counter() - started < 1.0 + 0.3  # interpreter start included; the budget is 1 s
    probe = "import sys, assay; heavy = [m for m in ('torch', 'matplotlib', 'pandas', 'sklearn', 'torchmetrics', 'safetensors', 'transformers', 'captum', 'fairlearn', 'onnxruntime') if m in sys.modules]; print(heavy)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"
    for command in ("demo", "run", "runs", "show", "report"):
        assert assay(command, "--help").returncode == 0


@pytest.mark.parametrize("gate, code", [('"accuracy >= 0.5"', 0), ('"accuracy > 1.0"', 1)])
def test_gates_set_the_exit_status(tmp_path, gate, code):
    study = tmp_path / "fast.toml"
    study.write_text(FAST_STUDY.format(gate=gate))
    out = assay("run", str(study), "--out", str(tmp_path / "runs"), "--quiet")
    assert out.returncode == code, out.stderr
    assert "decision:" in out.stdout
    run_dir = next((tmp_path / "runs").glob("fast-*"))
    assert (run_dir / "report.html").is_file() and (run_dir / "model_card.md").is_file()
    shown = assay("show", "latest", "--out", str(tmp_path / "runs"))
    assert shown.returncode == 0 and "mlp" in shown.stdout
    listed = assay("runs", "--out", str(tmp_path / "runs"))
    assert run_dir.name in listed.stdout
    rebuilt = assay("report", run_dir.name[:10], "--out", str(tmp_path / "runs"))
    assert rebuilt.returncode == 0, rebuilt.stderr


def _one_line_error(out):
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("assay: error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def test_unknown_key_in_study_names_the_key(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(FAST_STUDY.format(gate='"accuracy >= 0.5"').replace("epochs = 3", "epocs = 3"))
    line = _one_line_error(assay("run", str(study), "--out", str(tmp_path / "runs")))
    assert "unknown key 'epocs'" in line and "did you mean 'epochs'" in line
    study.write_text(FAST_STUDY.format(gate='"acuracy >= 0.9"'))
    line = _one_line_error(assay("run", str(study), "--out", str(tmp_path / "runs")))
    assert "unknown metric 'acuracy' in gate 'acuracy >= 0.9' (did you mean 'accuracy'?)" in line
    study.write_text("[task\n")
    assert "not valid TOML" in _one_line_error(assay("run", str(study)))
    assert "study file not found" in _one_line_error(assay("run", str(tmp_path / "missing.toml")))


def test_corrupt_png_in_an_image_folder_names_the_file(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = tmp_path / "images"
    for i, (img, label) in enumerate(zip(digits.images[:60], digits.target[:60])):
        folder = data / str(label % 2)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(folder / f"{i:03d}.png")
    bad = data / "1" / "broken.png"
    bad.write_bytes((data / "1" / "001.png").read_bytes()[:40])  # a truncated PNG
    study = tmp_path / "images.toml"
    study.write_text(FAST_STUDY.format(gate='"accuracy >= 0.5"').replace('builtin = "digits"', 'path = "images"'))
    line = _one_line_error(assay("run", str(study), "--out", str(tmp_path / "runs")))
    assert str(bad) in line


def test_show_unknown_run_is_a_user_error(tmp_path):
    assert "no runs stored" in _one_line_error(assay("show", "nope", "--out", str(tmp_path / "empty")))


def test_threads_sets_torch_and_blas_and_defaults_to_one():
    import argparse

    import torch
    from threadpoolctl import threadpool_info

    from assay import cli

    before = torch.get_num_threads()
    try:
        cli._set_threads(argparse.Namespace(threads=2))
        assert torch.get_num_threads() == 2
        assert all(pool["num_threads"] <= 2 for pool in threadpool_info())
        cli._set_threads(argparse.Namespace(threads=None))
        assert torch.get_num_threads() == cli.DEFAULT_THREADS == 1
    finally:
        torch.set_num_threads(before)
        from threadpoolctl import threadpool_limits

        threadpool_limits(before)


@pytest.mark.parametrize("argv", [
    ["--out", "elsewhere", "--quiet", "--seed", "3", "--threads", "2", "run", "s.toml"],
    ["run", "s.toml", "--out", "elsewhere", "--quiet", "--seed", "3", "--threads", "2"],
])
def test_common_options_hold_before_or_after_the_command(argv):
    """argparse lets a subcommand's defaults overwrite options given before it; assay's do not."""
    from assay.cli import build_parser

    args = build_parser().parse_args(argv)
    assert (args.out, args.quiet, args.seed, args.threads) == ("elsewhere", True, 3, 2)


def test_common_options_default_when_absent():
    from assay.cli import build_parser

    args = build_parser().parse_args(["run", "s.toml"])
    assert (args.out, args.quiet, args.seed, args.threads, args.device, args.debug) == ("runs", False, None, None, "auto", False)
