"""The Poisoning section, its figures and the model card lines, from a real run of a study that poisons its own digits.

Until ``report/html.py`` passes ``poisoning`` to the page and ``report.html.j2``
includes ``poisoning.html.j2``, these tests render the page with that one
include added, exactly as the wiring will.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from assay.report.html import render_html
from assay.report.plots import PlotStyle
from assay.report.poisoning_section import model_card_lines, poisoning_section

STUDY = """
name = "poisoned-digits"
seed = 0

[task]
builtin = "digits"
poison = { kind = "badnets", fraction = 0.05, target = "0" }

[[recipe]]
name = "cnn"
kind = "train"
arch = "cnn"
arch_options = { channels = [16, 32] }
epochs = 12

[checks]
run = ["performance", "poisoning"]
n_boot = 200

[policy]
gates = ["attack_success_rate <= 0.1"]
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from assay.spec import parse_study
    from assay.store import Store
    from assay.study import Study, report_data

    out = tmp_path_factory.mktemp("poisoning")
    result = Study(parse_study(STUDY), out=out, progress=False).run()
    return report_data(Store(result.run_dir.parent), result.run_id)


def _page(data) -> str:
    """The report page as written."""
    return render_html(data)


def _section(page: str) -> str:
    found = re.search(r'<section id="poisoning">.*?</section>', page, re.S)
    assert found, "no Poisoning section"
    return found[0]


def test_section_shows_the_attack_the_flags_against_the_truth_and_the_suspects(data):
    section = _section(_page(data))
    assert "Could not draw" not in section and "not known" not in section
    assert "This study poisoned its own training data: 63 examples carry a 3x3 patch" in section
    assert "are predicted as '0'." in section  # the target
    found = next(e for e in data.evidence if e.metric == "suspected_poison_fraction" and e.split == "test")
    assert f"{len(found.details['suspected'])} of 1259 training examples flagged" in section
    assert re.search(r"<td>0</td><td class=\"num\">\d+</td>.*?poisoned: split in two", section, re.S)  # class 0 called poisoned
    assert section.count("a natural sub-mode") + section.count("no clear split") == 9  # the nine clean classes, each with its reason
    assert 'id="fig-poison_fractions"' in section and 'id="fig-poison_previews"' in section
    for metric in ("recall", "precision", "false positive rate"):
        assert f"{metric}" in section


def test_no_section_without_the_check_and_the_model_card_says_what_was_found(data):
    names = data.candidate_names()
    without = replace(data, evidence=[e for e in data.evidence if e.check != "poisoning"])
    assert poisoning_section(without, names, PlotStyle.for_candidates(names)) is None
    lines = model_card_lines(data, "cnn")
    assert lines[0].startswith("- Backdoor (simulated BadNets, a 3x3 patch") and "**the backdoor works**" in lines[0]
    assert "**Suspected poisoned training data:** class '0'" in lines[1]
    assert lines[2].startswith("- Against the planted truth: recall ")
    assert model_card_lines(without, "cnn") == []


@pytest.mark.browser
def test_poisoning_section_renders_in_headless_chromium(data, tmp_path):
    """Every image decodes in a real browser and the section reads."""
    from assay.errors import MissingDependency, require
    from assay.report.screenshot import find_browser, screenshot

    try:
        find_browser()
        require("selenium.webdriver", "dev")
    except MissingDependency as error:
        pytest.fail(f"the browser test cannot run: {error}")
    page = tmp_path / "report.html"
    page.write_text(_page(data), encoding="utf-8")
    shot = screenshot(page, tmp_path / "report.png")
    assert shot["images"] and all(shot["images"]), shot["images"]
    text = shot["text"]
    assert "Poisoning: planted training examples and backdoors" in text
    assert "The most suspicious training examples: cnn" in text and "Estimated poisoned share per class: cnn" in text
    assert shot["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
