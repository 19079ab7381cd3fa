"""The Explanations section and the model card's explanation lines, from a real quick run of examples/explain.toml."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
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
    assert 'id="fig-explain_curves"' in section
    # Each class's full mean map and the most confident right/wrong examples, from what the check recorded
    for name in ("mlp", "cnn", "cnn-int8", "cnn-onnx"):
        details = _gain(data, name).details
        assert len(details["shortcuts"]["class_mean_abs"]) == 10 and details["examples"], name
        assert {x["role"] for x in details["examples"]} <= {"most confident right", "most confident wrong"}
    assert section.count('id="fig-class_attribution_maps"') == 4 and section.count('id="fig-explain_examples"') == 4
    assert 'id="fig-attribution_maps"' not in section  # the top-positions fallback is for older runs only
    assert "Explained examples: cnn (" in section and "Where it looks, per class: mlp (" in section
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
    example = {"role": "most confident wrong", "index": 3, "label": "iPhone", "predicted": "Android", "confidence": 0.91, "method": "saliency",
               "attribution": [0.5, -0.25, 0.1], "input": {"tokens": ["[CLS]", "<img src=x onerror=alert(1)>", "t.co"]}}
    evidence = [replace(e, details={**e.details, "shortcuts": tokens, "examples": [example]}) if e is gain else e for e in data.evidence]
    section = _section(render_html(replace(data, task={**data.task, "modality": "text"}, evidence=evidence)))
    assert "<script" not in section and "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    # an explained example's text: its tokens highlighted by |attribution|, the sign in the title, every token escaped
    assert "<img src=x" not in section and "&lt;img src=x onerror=alert(1)&gt;" in section
    assert "most confident wrong: label iPhone → predicted Android (0.91), saliency" in section
    # the sign is in the colour too: red for the prediction, blue against it (the ends of RdBu_r)
    assert re.search(r'<span class="tok" style="background: rgba\(178, 24, 43, 0\.9\)" title="attribution \+0\.5">\[CLS\]</span>', section)
    assert re.search(r'<span class="tok" style="background: rgba\(33, 102, 172, [0-9.]+\)" title="attribution -0\.25">', section)
    assert re.search(r'<span class="tok" style="background: rgba\(230, 159, 0, 0\.9\)"[^>]*>&lt;script', section)  # the strongest
    assert "class android" in section and ">t.co</span>" in section
    assert "fig-attribution_maps" not in section.split("mlp")[1].split("<h3>")[0]  # text is not drawn as a heatmap


def test_a_run_made_before_the_check_kept_maps_and_examples_draws_neither_and_raises_nothing(run):
    _, data = run
    older = []
    for e in (e for e in data.evidence if e.candidate == "mlp"):  # one candidate is enough, and a quarter of the drawing
        if e.check == "explain" and e.metric == "faithfulness_gain":
            shortcuts = {k: v for k, v in e.details["shortcuts"].items() if k != "class_mean_abs"}
            e = replace(e, details={**{k: v for k, v in e.details.items() if k != "examples"}, "shortcuts": shortcuts})
        older.append(e)
    section = _section(render_html(replace(data, evidence=older)))
    assert "Could not draw" not in section and "explain_examples" not in section and "class_attribution_maps" not in section
    assert section.count('id="fig-attribution_maps"') == 1  # each class's top positions, as such runs recorded them


def test_one_drawing_shows_an_image_a_signal_and_a_table_row_with_signed_attributions(run):
    """The function the report and ``assay explain`` share: heatmap over the grey image, the signal coloured by its
    attribution, a signed bar per column labelled with the row's value."""
    from matplotlib.figure import Figure

    from assay.report.explain_plots import class_attribution_maps, draw_attribution, explain_examples

    _, data = run
    image = next(x for x in _gain(data, "cnn").details["examples"])
    ax = Figure().add_subplot()
    heat = draw_attribution(ax, image)
    grey, overlay = ax.get_images()
    np.testing.assert_allclose(grey.get_array(), np.reshape(image["input"]["values"], image["input"]["shape"]).mean(0))
    np.testing.assert_allclose(overlay.get_array(), np.reshape(image["attribution"], image["input"]["shape"][1:]))
    assert heat is overlay and heat.norm.vmin == -heat.norm.vmax  # white is zero

    rng = np.random.default_rng(0)
    signal = {**image, "input": {"shape": [1, 40], "values": rng.normal(size=40).tolist()}, "attribution": rng.normal(size=40).tolist()}
    ax = Figure().add_subplot()
    lines = draw_attribution(ax, signal)
    a = np.asarray(signal["attribution"])
    np.testing.assert_allclose(lines.get_array(), (a[:-1] + a[1:]) / 2)  # each segment coloured by its two steps' mean

    columns = [f"column {j}" for j in range(15)]
    row = {**image, "input": {"columns": columns, "values": [f"v{j}" for j in range(15)]}, "attribution": np.linspace(-1, 0.4, 15).tolist()}
    ax = Figure().add_subplot()
    draw_attribution(ax, row)
    bars = {t.get_text(): p.get_width() for t, p in zip(ax.get_yticklabels(), ax.patches)}
    assert len(bars) == 12 and bars["column 0 = v0"] == -1.0 and "column 10 = v10" not in bars  # the 12 strongest, signed
    assert "3 weaker columns not shown" in ax.get_xlabel()
    assert explain_examples([replace(_gain(data, "cnn"), details={"examples": [row, row]})]) is not None
    long = {**row, "input": {"columns": ["a column whose name goes on and on"], "values": ["0.123"]}, "attribution": [1.0]}
    ax = Figure().add_subplot()
    draw_attribution(ax, long)
    assert ax.get_yticklabels()[0].get_text() == "a column whose name goe… = 0.123"  # a long name is cut, never the value

    # signals: each class's full mean map is a line per class, with all classes together
    maps = {"mean_abs": np.abs(a).tolist(), "class_mean_abs": {"0": np.abs(a).tolist(), "1": (2 * np.abs(a)).tolist()}}
    fig = class_attribution_maps([replace(_gain(data, "cnn"), details={"shortcuts": maps})])
    drawn = {line.get_label(): line.get_ydata() for line in fig.axes[0].get_lines()}
    assert set(drawn) == {"class 0", "class 1", "all classes"}
    np.testing.assert_allclose(drawn["class 1"], 2 * np.abs(a))


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
    assert "Explained examples: cnn" in text and "Where it looks, per class: cnn" in text  # the new figures are there, and loaded above
    png = shot["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("ASSAY_SCREENSHOT"):
        target = Path(os.environ["ASSAY_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
