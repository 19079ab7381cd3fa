"""The bring-your-own examples run as a user runs them: the script exits 0 and judges four candidates; every notebook cell runs.

Both run quick (300 rows per split, 2 epochs, three checks, 200 resamples),
so together they take well under two minutes on one core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assay.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CANDIDATES = {"resnet", "pipeline", "mlp", "gbt"}


def test_the_script_judges_all_four_and_decides(tmp_path):
    out = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(EXAMPLES / "bring_your_own.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "decision: " in done.stdout and "report:   " in done.stdout
    (run,) = Store(out).list_runs()
    decision = json.loads((out / run["id"] / "decision.json").read_text())
    report = (out / run["id"] / "report.html").read_text()
    for name in CANDIDATES:
        assert name in report
    assert "ResidualNet" in report and "Pipeline" in report  # the two brought models, by their own class names
    assert decision["chosen"] in CANDIDATES and decision["chosen"] in done.stdout


@pytest.fixture
def python3_kernel(tmp_path, monkeypatch):
    """A kernelspec named python3 that runs this interpreter, found first, whatever else is installed."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


def test_the_notebook_runs_every_cell(tmp_path, monkeypatch, python3_kernel):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("ASSAY_QUICK", "1")  # the kernel inherits it: the notebook runs small
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(EXAMPLES / "bring_your_own.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit the notebook with its outputs cleared"
    work = tmp_path / "work"
    work.mkdir()
    # A failing cell raises CellExecutionError with the cell and its traceback.
    nbclient.NotebookClient(nb, timeout=300, kernel_name=python3_kernel, resources={"metadata": {"path": str(work)}}).execute()
    (run,) = Store(work / "runs").list_runs()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any(h.startswith("<iframe") and "Summary" in h for h in html), "result renders as the report's top"
    assert any(all(name in h for name in CANDIDATES) for h in html), "result.table() shows the four candidates"
    assert run["id"]
