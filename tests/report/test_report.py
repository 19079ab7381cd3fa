"""The report: one self-contained HTML page and a model card, rebuilt from stored records.

The records here are written by hand with the exact details schemas the
performance, calibration and efficiency checks produce, for three plausible
digits classifiers, and go through JSON first, as the store keeps them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from assay.evidence import SKIPPED, Evidence
from assay.report import FIGURES, ReportData, render_html, render_model_card, write_report
from assay.select import Decision, Gate, GateResult, Objective

CLASSES = [str(d) for d in range(10)]
PER_CLASS = 27  # 270 test images, as the digits task's 15% test split
STUDY = """name = "digits"
description = "Pick a digit classifier for an embedded scanner: accurate, calibrated, fast."
seed = 0
[task]
builtin = "digits"
[policy]
gates = ["accuracy >= 0.95", "ece <= 0.05"]
objectives = ["maximise accuracy", "minimise latency_p50_ms"]
"""
DRAWN = ("reliability_diagram", "per_class_recall", "confusion_matrix", "latency", "training_curves", "pareto")


def _evidence(name: str, mistakes: int, ece: float, latency_ms: float, parameters: int, seed: int) -> list[Evidence]:
    """What performance, calibration and efficiency record for one candidate."""
    rng = np.random.default_rng(seed)
    cm = np.eye(10, dtype=int) * PER_CLASS
    for _ in range(mistakes):
        true, wrong = rng.choice(10, size=2, replace=False)
        cm[true, true] -= 1
        cm[true, wrong] += 1
    n, acc = cm.sum(), np.trace(cm) / cm.sum()
    recall = np.diag(cm) / cm.sum(axis=1)
    half = 1.96 * np.sqrt(max(acc * (1 - acc), 1e-4) / n)
    per_class = [{"class": c, "recall": float(r), "low": float(max(0, r - 0.09)), "high": float(min(1, r + 0.04)), "support": PER_CLASS}
                 for c, r in zip(CLASSES, recall)]
    counts = {11: 2, 12: 2, 13: 2 + mistakes, 14: int(n) - 6 - mistakes}  # most digits are predicted with confidence > 0.93
    bins = [{"lo": k / 15, "hi": (k + 1) / 15, "count": counts.get(k, 0), "accuracy": (0.5 if k < 14 else 0.998) if k in counts else None,
             "confidence": (k + 0.6) / 15 if k in counts else None} for k in range(15)]
    samples = np.round(rng.lognormal(np.log(latency_ms), 0.06, 100), 4)
    where = {"device": "cpu", "threads": 2}
    records = [
        Evidence("performance", "accuracy", name, float(acc), float(acc - half), float(min(1.0, acc + half)), True,
                 details={"class_names": CLASSES, "confusion_matrix": cm.tolist(), "n": int(n)}, figures=("confusion_matrix",)),
        Evidence("performance", "macro_f1", name, float(acc) - 0.001, float(acc - half), float(min(1.0, acc + half)), True),
        Evidence("performance", "worst_class_recall", name, float(recall.min()), float(max(0, recall.min() - 0.1)), 1.0, True,
                 details={"worst_class": CLASSES[int(recall.argmin())], "per_class": per_class}, figures=("per_class_recall",)),
        Evidence("calibration", "ece", name, ece, ece * 0.6, ece * 1.5, False, details={"n_bins": 15, "bins": bins}, figures=("reliability_diagram",)),
        Evidence("calibration", "brier_loss", name, 0.002 * mistakes + 0.001, 0.0005, 0.004 * mistakes + 0.002, False),
        Evidence("efficiency", "parameters", name, float(parameters), higher_is_better=False),
        Evidence("efficiency", "size_mb", name, parameters * 4 / 1e6, higher_is_better=False),
        Evidence("efficiency", "latency_p50_ms", name, float(np.median(samples)), float(np.percentile(samples, 45)),
                 float(np.percentile(samples, 55)), False, details={"batch1_ms": samples.tolist(), **where}, figures=("latency",)),
    ]
    # Through JSON and back, as the store writes and reads them.
    return [Evidence.from_dict(json.loads(json.dumps(e.to_dict()))) for e in records]


def _candidate(name: str, recipe: str, parent: str | None, arch: dict, parameters: int, epochs: int) -> dict:
    history = [{"epoch": e, "loss": 1.6 * 0.8**e, "val_loss": 1.5 * 0.82**e + 0.02, "val_accuracy": min(0.99, 0.4 + 0.08 * e)}
               for e in range(1, epochs + 1)]
    return {
        "name": name, "id": hashlib.sha256(name.encode()).hexdigest()[:12], "recipe": recipe, "parent": parent, "parent_id": None,
        "arch": {**arch, "input_shape": [1, 8, 8], "num_classes": 10}, "config": {"epochs": epochs, "lr": 0.003, "batch_size": 64},
        "seed": 0, "data_hash": "67136ead4675aecdea9c728131c6eabc", "transforms": [],
        "versions": {"assay": "0.1.0", "torch": "2.13.0+cpu", "python": "3.11.7"}, "parameters": parameters,
        "training": {"epochs_run": epochs, "best_epoch": epochs - 3, "stopped_early": False, "train_seconds": 3.2, "history": history}
        if recipe == "train" else {},
    }


def _decision(evidence: list[Evidence], chosen: str | None, failing: dict[str, str]) -> Decision:
    value = {(e.candidate, e.metric): e.value for e in evidence}
    names = list(dict.fromkeys(e.candidate for e in evidence))
    gates = (Gate("accuracy", ">=", 0.95), Gate("ece", "<=", 0.05))
    results = tuple(GateResult(n, g, value[n, g.metric], failing.get(n) != str(g)) for n in names for g in gates)
    passed = tuple(n for n in names if n not in failing)
    return Decision(chosen, f"{chosen} passes all 2 gate(s) and is on the Pareto front; it is best on latency_p50_ms." if chosen else
                    "No candidate passes every gate.", gates, (Objective("accuracy", True), Objective("latency_p50_ms", False)), passed,
                    passed[:2] if chosen else (), results)


def make_data(names: tuple[str, str, str] = ("mlp", "cnn", "cnn-int8"), chosen: str | None = "cnn-int8") -> ReportData:
    mlp, cnn, int8 = names
    evidence = _evidence(mlp, 4, 0.061, 0.18, 51_594, 1) + _evidence(cnn, 1, 0.009, 0.37, 94_186, 2) + _evidence(int8, 1, 0.011, 0.29, 94_186, 3)
    failing = {mlp: "ece <= 0.05"} if chosen else {n: "accuracy >= 0.95" for n in names}
    candidates = [
        _candidate(mlp, "train", None, {"name": "mlp", "hidden": [256, 128]}, 51_594, 21),
        _candidate(cnn, "train", None, {"name": "cnn", "channels": [32, 64, 128]}, 94_186, 40),
        _candidate(int8, "quantize", cnn, {"name": "cnn", "channels": [32, 64, 128]}, 94_186, 0),
    ]
    task = {"name": "digits", "modality": "image", "description": "Handwritten digits 0-9, 8x8 greyscale.", "classes": CLASSES,
            "input_shape": [1, 8, 8], "sizes": {"test": 270, "train": 1257, "val": 270},
            "class_counts": {"test": [27] * 10, "train": [126] * 9 + [123], "val": [27] * 10}, "groups": [], "metadata": [],
            "source": "sklearn.datasets.load_digits", "split rule": "stratified 70/15/15, seed 0"}
    return ReportData(run_id="digits-20261124-214330-2d89", study_name="digits", created="2026-11-24T21:43:30+00:00", task=task,
                      candidates=candidates, evidence=evidence, decision=_decision(evidence, chosen, failing), study_text=STUDY,
                      environment={"python": "3.11.7", "torch": "2.13.0+cpu", "device": "cpu", "machine": "x86_64"})


class _Page(HTMLParser):
    """Collects what decides whether the page is self-contained."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag == "img":
            self.images.append(found.get("src") or "")
        self.links += [v or "" for k, v in attrs if k in ("href", "src") and tag != "img"]


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, str, str]:
    run_dir = tmp_path_factory.mktemp("run")
    html_path, card_path = write_report(run_dir, make_data())
    return run_dir, html_path.read_text(encoding="utf-8"), card_path.read_text(encoding="utf-8")


def test_write_report_writes_the_page_and_the_card(written):
    run_dir, html, card = written
    assert sorted(p.name for p in run_dir.iterdir()) == ["model_card.md", "report.html"]  # and no temp file left behind
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert card.startswith("# Model card: cnn-int8")


def test_page_is_self_contained(written):
    _, html, _ = written
    page = parse(html)
    assert "http://" not in html and "https://" not in html
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert all(link.startswith("#") for link in page.links)  # only in-page anchors
    assert not page.tags & {"script", "link", "iframe", "object"}


def test_page_names_every_candidate_and_the_decision(written):
    _, html, _ = written
    for name in ("mlp", "cnn", "cnn-int8"):
        assert f">{name}<" in html
    assert re.search(r"Ship <strong>cnn-int8</strong>", html)
    assert 'class="chosen"' in html
    assert "ece &lt;= 0.05 (got 0.061)" in html  # mlp's failed gate, with its value
    assert "[0.037, 0.091]" in html  # mlp's ece interval, as Evidence.interval_text() writes it


def test_every_known_figure_is_drawn_once(written):
    _, html, _ = written
    assert set(FIGURES) >= {"reliability_diagram", "per_class_recall", "confusion_matrix", "latency"}
    assert len(parse(html).images) == len(DRAWN)
    for name in DRAWN:
        assert html.count(f'id="fig-{name}"') == 1, name
    assert "Could not draw" not in html and "not known" not in html


def test_unknown_and_malformed_figures_leave_a_note_not_an_exception():
    data = make_data()
    odd = [replace(e, figures=(*e.figures, "ood_histogram")) if e.metric == "ece" else e for e in data.evidence]
    broken = [replace(e, details={"bins": "not a list"}) if e.metric == "ece" else e for e in odd]
    html = render_html(replace(data, evidence=broken))
    assert "Figure &#39;ood_histogram&#39; is not known" in html
    assert "Could not draw &#39;reliability_diagram&#39;" in html
    assert len(parse(html).images) == len(DRAWN) - 1


def test_names_from_the_study_are_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    html_path, card_path = write_report(tmp_path, make_data(names=("mlp", evil, "cnn-int8")))
    html, card = html_path.read_text(), card_path.read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in card  # Markdown renders raw HTML; the card escapes it


def test_writes_are_atomic(tmp_path, monkeypatch):
    write_report(tmp_path, make_data())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def fail(data):
        raise RuntimeError("disk full")

    monkeypatch.setattr("assay.report.write.render_model_card", fail)
    with pytest.raises(RuntimeError):
        write_report(tmp_path, make_data(chosen="cnn"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files intact, no temp files


def test_rebuilding_from_the_same_records_gives_the_same_files(written, tmp_path):
    _, html, card = written
    again_html, again_card = write_report(tmp_path, make_data())
    assert again_html.read_text(encoding="utf-8") == html and again_card.read_text(encoding="utf-8") == card


def test_no_candidate_passing_is_said_plainly():
    data = make_data(chosen=None)
    html, card = render_html(data), render_model_card(data)
    assert "No candidate passes the gates." in html
    verdict = re.search(r'<section class="verdict fail".*?</section>', html, re.S)
    assert verdict and verdict[0].count("accuracy &gt;= 0.95 (got") == 3  # each candidate's failed gate, in the headline
    assert card.startswith("# Model card: no model chosen")
    assert "## Results of every candidate" in card
    for name in ("mlp", "cnn", "cnn-int8"):
        assert f"| {name} |" in card


def test_a_run_without_decision_training_or_objectives_still_reports():
    data = make_data()
    bare = replace(data, decision=None, candidates=[{**c, "training": {}} for c in data.candidates],
                   evidence=[*data.evidence, Evidence("robustness", SKIPPED, "mlp", float("nan"), details={"reason": "no corruptions for tabular data"})])
    html, card = render_html(bare), render_model_card(bare)
    assert "No decision yet." in html
    assert "Skipped</strong>: mlp: no corruptions for tabular data" in html
    assert len(parse(html).images) == 4  # the evidence figures; no training curves, no Pareto plot
    assert "no model chosen" in card


def test_model_card_follows_mitchell_et_al(written):
    _, _, card = written
    for section in ("Model details", "Intended use", "Training data", "Evaluation data", "Metrics",
                    "Calibration and efficiency", "Caveats and recommendations", "How to reproduce"):
        assert f"\n## {section}\n" in card, section
    assert "| `accuracy` | 0.996 | [0.989, 1.000] | pass |" in card
    assert "Not validated for:" in card and "inputs an attacker perturbed within a small radius" in card
    assert "The test set is small, 270 examples" in card
    assert "Only the clean view" in card
    assert "```toml\n" + STUDY.rstrip() + "\n```" in card


@pytest.mark.browser
def test_page_renders_in_headless_chromium(written, tmp_path):
    """Every image decodes and the decision shows, in a real browser; the screenshot is kept."""
    from assay.errors import MissingDependency, require
    from assay.report.screenshot import find_browser, screenshot

    try:  # CI installs both, so a missing one fails loudly instead of skipping quietly
        find_browser()  # names: apt-get install chromium chromium-driver
        require("selenium.webdriver", "dev")
    except MissingDependency as error:
        pytest.fail(f"the browser test cannot run: {error}")
    run_dir, _, _ = written
    shot = screenshot(run_dir / "report.html", tmp_path / "report.png")
    assert shot["images"] and all(shot["images"]), shot["images"]
    assert len(shot["images"]) == len(DRAWN)
    assert "Ship cnn-int8." in shot["text"]
    png = shot["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") >= 1280 and int.from_bytes(png[20:24], "big") >= shot["height"]
    if os.environ.get("ASSAY_SCREENSHOT"):
        target = Path(os.environ["ASSAY_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
