"""``assay explain RUN --candidate NAME --input FILE``: one input read with the run's task, its prediction, and the
attribution the explain check's method gives on it; every bad input one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from assay import cli
from assay.checks.base import CheckContext, make_check
from assay.checks.predictions import PredictionCache
from assay.data.builtin import load_builtin
from assay.data.sources import load_table
from assay.errors import DataError
from assay.spec import parse_study
from assay.study import Study

pytest.importorskip("captum")

EXPLAIN = {"n_examples": 12, "n_steps": 16, "methods": ["saliency", "integrated_gradients", "ablation"],
           "costly_methods": "none", "infidelity_samples": 0, "sensitivity_samples": 0}  # no KernelSHAP, infidelity, sensitivity: seconds saved


def study(name: str, task: str, recipes: list[dict]) -> str:
    """A tiny study file: ``task`` lines, the recipes, and only the explain check with ``EXPLAIN`` (JSON values are TOML here)."""
    tables = "".join("[[recipe]]\n" + "".join(f"{k} = {v if k == 'arch_options' else json.dumps(v)}\n" for k, v in r.items()) for r in recipes)
    options = "".join(f"{k} = {json.dumps(v)}\n" for k, v in EXPLAIN.items())
    return f'name = "{name}"\nseed = 0\n[task]\n{task}\n{tables}[checks]\nrun = ["explain"]\n[checks.explain]\n{options}'


DIGITS = study("explain-cli", 'builtin = "digits"', [
    {"name": "cnn", "kind": "train", "arch": "cnn", "arch_options": "{ channels = [8, 16] }", "epochs": 3},
    {"name": "cnn-int8", "kind": "quantize", "parent": "cnn"},
])
WINE = study("explain-table", 'path = "wine.csv"\nlabel = "cultivar"', [{"name": "mlp", "kind": "train", "arch": "mlp", "epochs": 3}])


def _run(folder: Path, text: str) -> tuple[Path, str]:
    study = folder / "study.toml"
    study.write_text(text)
    result = Study(parse_study(text, path=study), out=folder / "runs", progress=False, quick=True).run()
    return folder / "runs", result.run_id


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A quick digits run: a small CNN and its int8 child, explained by three methods."""
    return _run(tmp_path_factory.mktemp("explain-cli"), DIGITS)


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    """A quick run on a table file (scikit-learn's wine, plus a categorical column): an MLP."""
    from sklearn.datasets import load_wine

    folder = tmp_path_factory.mktemp("explain-table")
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["cellar"] = np.random.default_rng(0).choice(["north", "south", "east"], size=len(frame))
    frame.to_csv(folder / "wine.csv", index=False)
    return _run(folder, WINE)


def explain(out: Path, *args: str) -> tuple[int, str, str]:
    """``assay explain`` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["explain", *args, "--out", str(out), "--threads", str(torch.get_num_threads())])
    return code, stdout.getvalue(), stderr.getvalue()


def one_line_error(out: Path, *args: str) -> str:
    code, stdout, stderr = explain(out, *args)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("assay: error: "), (code, stdout, stderr)
    assert "Traceback" not in stderr
    return lines[0]


def written(stdout: str, label: str) -> Path:
    return Path(next(line.split(":", 1)[1].strip() for line in stdout.splitlines() if line.startswith(f"{label}:")))


def check_attribution(task, model, x: np.ndarray, method: str) -> tuple[int, np.ndarray]:
    """The predicted class and what the explain check's method gives for it on ``x``, with the study's options."""
    check = make_check("explain", EXPLAIN)
    setup = check.setup(CheckContext(task=task, predictions=PredictionCache(), seed=0), x)
    with torch.no_grad():
        target = int(model(torch.as_tensor(x)).argmax(1)[0])
    return target, check.attributions(model, x, np.array([target]), setup, [method])[method][0]


def test_a_digit_png_of_any_size_is_resized_predicted_and_explained_as_the_check_does(digits_run, tmp_path):
    out, run_id = digits_run
    digits = load_builtin("digits", seed=0)
    image = (digits.test.x[5, 0] * 255).astype(np.uint8)
    Image.fromarray(image).resize((40, 40), Image.NEAREST).save(tmp_path / "five.png")

    code, stdout, stderr = explain(out, run_id[:12], "--candidate", "cnn", "--input", str(tmp_path / "five.png"))

    assert code == 0, stderr
    assert "resized from 40x40" in stdout and "8x8" in stdout
    record = json.loads(written(stdout, "numbers").read_text())
    gain = next(e for e in _evidence(out, run_id) if e.check == "explain" and e.metric == "faithfulness_gain" and e.candidate == "cnn")
    assert record["method"] == gain.details["best_method"] and "most faithful" in record["method_note"]  # the run's best by default
    picture = written(stdout, "written")
    assert picture.parent == out / run_id / "explanations" and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The same file read independently, as data/images.py reads an image folder: grey, bilinear to 8x8, / 255.
    x = np.asarray(Image.open(tmp_path / "five.png").convert("L").resize((8, 8), Image.BILINEAR), dtype=np.float32)[None, None] / 255
    model = _model(out, run_id, "cnn")
    target, expected = check_attribution(digits, model, x, record["method"])
    with torch.no_grad():
        probs = torch.softmax(model(torch.as_tensor(x)).double(), 1)[0].numpy()
    assert record["predicted"] == digits.class_names[target]
    top = sorted(record["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    assert f"top 3:      {top[0][0]} {top[0][1]:.3f}, {top[1][0]} {top[1][1]:.3f}, {top[2][0]} {top[2][1]:.3f}" in stdout
    np.testing.assert_allclose(record["probabilities"][record["predicted"]], probs[target], atol=1e-6)
    np.testing.assert_allclose(record["example"]["attribution"], expected, atol=1e-6)
    assert np.abs(expected).max() > 0


def test_a_table_row_is_encoded_by_the_task_pipeline_and_attributed_per_original_column(wine_run, tmp_path):
    out, run_id = wine_run
    task = load_table(out.parent / "wine.csv", label="cultivar", seed=0)
    frame = task.pipeline.inverse(task.test.x[:3]).assign(cultivar="?")  # raw rows, with the label column a user's file keeps
    frame.to_csv(tmp_path / "rows.csv", index=False)

    code, stdout, stderr = explain(out, run_id, "--candidate", "mlp", "--input", str(tmp_path / "rows.csv"), "--row", "2",
                                   "--method", "integrated_gradients")

    assert code == 0, stderr
    assert "columns not used by the task ignored: cultivar" in stdout
    record = json.loads(written(stdout, "numbers").read_text())
    example = record["example"]
    assert example["input"]["columns"] == task.pipeline.columns and len(example["attribution"]) == len(task.pipeline.columns)
    assert example["input"]["values"][task.pipeline.columns.index("cellar")] == str(frame["cellar"].iloc[2])
    _, expected = check_attribution(task, _model(out, run_id, "mlp"), task.pipeline.transform(frame.iloc[[2]]), "integrated_gradients")
    np.testing.assert_allclose(example["attribution"], expected, atol=1e-6)
    assert written(stdout, "written").suffix == ".png"


def test_a_row_the_check_explained_gets_the_attribution_the_check_recorded(wine_run, tmp_path):
    """End to end: an example the explain check kept, written as a raw CSV row and explained again, gives its recorded numbers."""
    out, run_id = wine_run
    gain = next(e for e in _evidence(out, run_id) if e.check == "explain" and e.metric == "faithfulness_gain" and e.split == "test")
    kept = gain.details["examples"][0]
    task = load_table(out.parent / "wine.csv", label="cultivar", seed=0)
    task.pipeline.inverse(task.test.x[[kept["index"]]]).to_csv(tmp_path / "kept.csv", index=False)

    code, stdout, stderr = explain(out, run_id, "--candidate", "mlp", "--input", str(tmp_path / "kept.csv"))

    assert code == 0, stderr
    record = json.loads(written(stdout, "numbers").read_text())
    assert record["method"] == kept["method"] == gain.details["best_method"]
    assert record["predicted"] == kept["predicted"] and record["example"]["input"] == kept["input"]
    np.testing.assert_allclose(record["probabilities"][kept["predicted"]], kept["confidence"], atol=1e-6)
    np.testing.assert_allclose(record["example"]["attribution"], kept["attribution"], atol=1e-6)


def test_a_candidate_without_gradients_gets_its_gradient_free_method(digits_run, tmp_path):
    """The int8 child: its most faithful method in the run is gradient-free, and that is the default."""
    out, run_id = digits_run
    Image.fromarray((load_builtin("digits").test.x[0, 0] * 255).astype(np.uint8)).save(tmp_path / "zero.png")
    code, stdout, stderr = explain(out, "latest", "--candidate", "cnn-int8", "--input", str(tmp_path / "zero.png"))
    assert code == 0, stderr
    assert "method:     ablation: the run's most faithful method for cnn-int8" in stdout
    assert written(stdout, "written").is_file()


def test_bad_inputs_are_one_line_and_exit_2(digits_run, wine_run, tmp_path):
    out, run_id = digits_run
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    assert f"did you mean '{run_id}'" in one_line_error(out, run_id[:-1] + "x", "--candidate", "cnn", "--input", str(png))
    line = one_line_error(out, run_id, "--candidate", "cnnn", "--input", str(png))
    assert "no candidate 'cnnn' (did you mean 'cnn'?)" in line and "cnn-int8" in line
    assert "missing.png: not found" in one_line_error(out, run_id, "--candidate", "cnn", "--input", str(tmp_path / "missing.png"))
    text = tmp_path / "note.txt"
    text.write_text("a seven")
    line = one_line_error(out, run_id, "--candidate", "cnn", "--input", str(text))
    assert "a text file (.txt), but task 'digits' is an image task; give an image file" in line
    broken = tmp_path / "broken.png"
    broken.write_bytes(png.read_bytes()[:30])
    assert "broken.png: cannot read image" in one_line_error(out, run_id, "--candidate", "cnn", "--input", str(broken))
    line = one_line_error(out, run_id, "--candidate", "cnn-int8", "--input", str(png), "--method", "integrated_gradients")
    assert "cnn-int8 cannot use it (needs gradients" in line and "methods it can use: ablation" in line
    assert "did you mean 'saliency'" in one_line_error(out, run_id, "--candidate", "cnn", "--input", str(png), "--method", "salency")
    assert "only a table file has rows" in one_line_error(out, run_id, "--candidate", "cnn", "--input", str(png), "--row", "1")

    out, run_id = wine_run
    task = load_table(out.parent / "wine.csv", label="cultivar", seed=0)
    rows = task.pipeline.inverse(task.test.x[:2])
    rows.rename(columns={"alcohol": "alcohl"}).to_csv(tmp_path / "typo.csv", index=False)
    line = one_line_error(out, run_id, "--candidate", "mlp", "--input", str(tmp_path / "typo.csv"), "--row", "0")
    assert "typo.csv: no column 'alcohol' (found 'alcohl': misspelt?)" in line
    rows.to_csv(tmp_path / "two.csv", index=False)
    assert "holds 2 rows; pick one with --row K (0 to 1)" in one_line_error(out, run_id, "--candidate", "mlp", "--input", str(tmp_path / "two.csv"))
    assert "--row 5: " in one_line_error(out, run_id, "--candidate", "mlp", "--input", str(tmp_path / "two.csv"), "--row", "5")
    rows.assign(magnesium="lots").to_csv(tmp_path / "word.csv", index=False)
    line = one_line_error(out, run_id, "--candidate", "mlp", "--input", str(tmp_path / "word.csv"), "--row", "0")
    assert "column 'magnesium' holds 'lots' in row 0, not a number" in line
    line = one_line_error(out, run_id, "--candidate", "mlp", "--input", str(png))
    assert "an image file (.png), but task 'wine' is a tabular task" in line
    code, _, stderr = explain(out, run_id, "--candidate", "mlp", "--input", str(tmp_path / "two.csv"), "--row", "-1")
    assert code == 2 and "is negative" in stderr


def test_a_signal_of_the_wrong_length_is_refused_and_the_right_one_read(tmp_path):
    from assay import Task
    from assay.explain_input import read_input

    rng = np.random.default_rng(0)
    task = Task.from_arrays(rng.normal(size=(40, 2, 30)), np.arange(40) % 2, rng.normal(size=(10, 2, 30)), np.arange(10) % 2, modality="signal")
    np.save(tmp_path / "short.npy", np.zeros((2, 29)))
    with pytest.raises(DataError, match=r"short.npy: holds 58 values \(shape \(2, 29\)\); task 'arrays' takes signals of 30 steps x 2 channels"):
        read_input(task, tmp_path / "short.npy")
    signal = rng.normal(size=60)
    (tmp_path / "one.csv").write_text(",".join(str(float(v)) for v in signal) + "\n")
    given = read_input(task, tmp_path / "one.csv")
    np.testing.assert_array_equal(given.x, signal.astype(np.float32).reshape(1, 2, 30))
    (tmp_path / "two.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match="holds 2 non-empty lines"):
        read_input(task, tmp_path / "two.csv")


def test_a_text_is_tokenized_by_the_task_and_its_tokens_highlighted_escaped(tmp_path):
    """Text tasks: the file's whole content is one text, read by the task's tokenizer; the HTML escapes every token."""
    from assay.data.task import Split, Task
    from assay.data.text import TextPipeline
    from assay.explain_input import _shown, read_input
    from assay.report.explain_plots import write_attribution

    pipeline = TextPipeline("minilm", max_length=16)
    ids = pipeline.encode(["good day", "bad day"])
    split = Split(ids, np.array([0, 1]))
    task = Task(name="words", modality="text", class_names=("good", "bad"), train=split, val=split, test=split, pipeline=pipeline)
    (tmp_path / "say.txt").write_text("<b>good</b> day & night")
    given = read_input(task, tmp_path / "say.txt")
    np.testing.assert_array_equal(given.x, pipeline.encode(["<b>good</b> day & night"]))
    kept = int((given.x[0] != pipeline.pad_id).sum())
    attribution = np.linspace(-1, 1, given.x.shape[1])
    example = {"role": "say.txt (gru)", "label": "", "predicted": "good", "confidence": 0.75, "method": "integrated_gradients",
               **_shown(given, attribution, task)}
    assert len(example["input"]["tokens"]) == kept and example["input"]["tokens"][0] == "[CLS]"
    np.testing.assert_array_equal(example["attribution"], attribution[:kept])
    page = write_attribution(example, tmp_path / "say").read_text()
    assert "<b>" not in page and "&lt;" in page and "&amp;" in page
    assert page.count('class="tok"') == kept + 2  # every token, and the two in the legend
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="holds no text"):
        read_input(task, tmp_path / "empty.txt")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        read_input(task, tmp_path / "latin.txt")


def _evidence(out: Path, run_id: str):
    from assay.store import Store

    return Store(out).load_evidence(run_id)


def _model(out: Path, run_id: str, name: str):
    from assay.models.candidate import Candidate

    return Candidate.load(out / run_id / "candidates", name).model
