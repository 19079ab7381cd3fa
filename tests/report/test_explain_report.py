"""The Explanations section and the model card's explanation lines, from a real quick run of examples/explain.toml."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from assay.report import render_html, render_model_card, write_report

pytest.importorskip("captum")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "explain.toml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The digits explain example in quick mode: an mlp, a cnn and its int8 and ONNX children, and their report data."""
    from assay.spec import load_study
    from assay.store import Store
    from assay.study import Study, report_data

    out = tmp_path_factory.mktemp("explain")
    result = Study(load_study(EXAMPLE), out=out, progress=False, quick=True).run()
    return result, report_data(Store(result.run_dir.parent), result.run_id)


def _gain(data, candidate):
    return next(e for e in data.evidence if e.check == "explain" and e.metric == "faithfulness_gain" and e.candidate == candidate
                and e.split == "test")


def _section(html: str) -> str:
    found = re.search(r'<section id="explanations">.*?</section>', html, re.S)
    assert found, "no Explanations section"
    return found[0]


def test_section_has_every_candidate_method_verdict_and_the_random_baseline(run):
    result, data = run
    html = result.report.read_text(encoding="utf-8")
    assert "Could not draw" not in html and "not known" not in html
    section = _section(html)
    for name in ("mlp", "cnn", "cnn-int8", "cnn-onnx"):
        assert f"{name}</h3>" in section or f"{name}<span class=\"badge\">" in section, name
        methods = _gain(data, name).details["methods"]
        for method, row in methods.items():
            assert f"<code>{method}</code>" in section
        assert any(row["verdict"] in section for row in methods.values())
    assert section.count("random attribution</th>") == 4  # the baseline row under each table
    maps = section.count('id="fig-attribution_maps"') + section.count('id="fig-class_attribution_maps"')  # full class maps where the run kept them
    assert 'id="fig-explain_curves"' in section and maps == 4
    assert "Not run: " in section  # the int8/ONNX children: gradient methods and why
    assert 'href="#explanations"' in html
    assert "Evidence: explain" not in html  # one section, not the generic one as well


def test_no_better_than_random_is_said_plainly(run):
    _, data = run
    gain = _gain(data, "cnn")
    row = next(iter(gain.details["methods"]))
    doctored = {**gain.details, "methods": {**gain.details["methods"],
                                            row: {**gain.details["methods"][row], "gain": 0.001, "low": -0.01, "high": 0.012,
                                                  "verdict": "no better than random"}}}
    evidence = [replace(e, details=doctored) if e is gain else e for e in data.evidence]
    section = _section(render_html(replace(data, evidence=evidence)))
    assert re.search(rf"{row}</span>: no better than random \(gain \+0\.001 \[-0\.010, \+0\.012\]\)", section)


def test_model_card_says_which_method_is_faithful_and_which_is_not(run):
    _, data = run
    chosen = replace(data, decision=replace(data.decision, chosen="mlp"))
    card = render_model_card(chosen)
    assert "\n## Explanations\n" in card
    details = _gain(data, "mlp").details
    best = details["best_method"]
    assert f"Most faithful: `{best}`" in card
    for method, row in details["methods"].items():
        if row["verdict"] != "better than random":
            assert f"**Not faithful:** `{method}`" in card
    assert "## Explanations" not in render_model_card(replace(data, evidence=[e for e in data.evidence if e.check != "explain"],
                                                              decision=replace(data.decision, chosen="mlp")))


def test_tables_get_column_bars_and_text_gets_escaped_highlighted_tokens(run):
    _, data = run
    gain = _gain(data, "mlp")
    tabular = replace(data, task={**data.task, "modality": "tabular"})
    assert 'id="fig-column_importance"' in _section(render_html(tabular))
    tokens = {"top": [{"feature": "<script>alert(1)</script>", "index": 5, "importance": 0.9, "count": 4},
                      {"feature": "https", "index": 6, "importance": 0.3, "count": 12}],
              "per_class": {"android": [{"feature": "t.co", "index": 7, "importance": 0.6, "count": 5}]}}
    evidence = [replace(e, details={**e.details, "shortcuts": tokens}) if e is gain else e for e in data.evidence]
    section = _section(render_html(replace(data, task={**data.task, "modality": "text"}, evidence=evidence)))
    assert "<script" not in section and "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert re.search(r'<span class="tok" style="background: rgba\(230, 159, 0, 0\.9\)"[^>]*>&lt;script', section)  # the strongest
    assert "class android" in section and ">t.co</span>" in section
    assert "fig-attribution_maps" not in section.split("mlp")[1].split("<h3>")[0]  # text is not drawn as a heatmap


@pytest.mark.browser
def test_explanations_render_in_headless_chromium(run, tmp_path):
    """Every image of the run's report decodes in a real browser and the section reads; the screenshot is kept."""
    from assay.errors import MissingDependency, require
    from assay.report.screenshot import find_browser, screenshot

    try:  # CI installs both, so a missing one fails loudly instead of skipping quietly
        find_browser()
        require("selenium.webdriver", "dev")
    except MissingDependency as error:
        pytest.fail(f"the browser test cannot run: {error}")
    result, data = run
    html_path, _ = write_report(tmp_path, data)
    shot = screenshot(html_path, tmp_path / "report.png")
    assert shot["images"] and all(shot["images"]), shot["images"]
    text = shot["text"]
    assert "Explanations: which ones can be believed" in text
    for method in _gain(data, "cnn").details["methods"]:
        assert method in text
    assert "random attribution" in text and "Could not draw" not in text
    png = shot["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("ASSAY_SCREENSHOT"):
        target = Path(os.environ["ASSAY_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
