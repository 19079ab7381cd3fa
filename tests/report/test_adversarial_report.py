"""The Adversarial section from real records: a CNN, its int8 child and a model that hides its gradients, rendered through its partial."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
from markupsafe import escape
from torch import nn

from assay.checks.adversarial import Adversarial
from assay.checks.base import CheckContext
from assay.checks.predictions import PredictionCache
from assay.models.candidate import Candidate
from assay.report.adversarial_section import adversarial_section, robust_accuracy_line
from assay.report.data import ReportData
from assay.report.plots import PlotStyle

OPTIONS = {"n_examples": 48, "epsilons": [0.05, 0.1, 0.2], "steps": 5, "queries": 40, "check_examples": 32}


class _Rounded(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 16) / 16)  # zero gradient everywhere


@pytest.fixture(scope="module")
def data(cnn, digits, tmp_path_factory):
    from assay.recipes import RecipeContext, make_recipe

    int8 = make_recipe("quantize", {"parent": "cnn"}, "cnn-int8").make(
        "cnn-int8", RecipeContext(task=digits, work_dir=tmp_path_factory.mktemp("q"), candidates={"cnn": cnn}, progress=False))
    rounded = Candidate("<rounded>", _Rounded(cnn.model), cnn.provenance)  # a name that must be escaped
    candidates = {"cnn": cnn, "cnn-int8": int8, "<rounded>": rounded}
    ctx = CheckContext(task=digits, predictions=PredictionCache(None), n_boot=100, candidates=candidates)
    check = Adversarial(**OPTIONS)
    evidence = [e for c in candidates.values() for e in check.run(c, ctx)]
    return ReportData(run_id="r", study_name="s", created="2026-01-01T00:00:00", task={"modality": "image"},
                      candidates=[c.describe() for c in candidates.values()], evidence=evidence, decision=None, study_text="",
                      environment={})


def _render(section: dict, colors: dict) -> str:
    import jinja2

    from assay.report import html

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(html._TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    page = ('{% macro figures(items) %}{% for f in items %}<figure id="fig-{{ f.name }}">{{ f.note }}<img src="{{ f.src }}"></figure>'
            '{% endfor %}{% endmacro %}{% include "adversarial.html.j2" %}')
    return env.from_string(page).render(adversarial=section, colors=colors)


def test_section_shows_every_candidate_its_curve_transfer_warnings_and_examples(data):
    names = ["cnn", "cnn-int8", "<rounded>"]
    style = PlotStyle.for_candidates(names, "cnn")
    section = adversarial_section(data, names, style)
    assert [c["name"] for c in section["candidates"]] == names
    figures = [*section["curves"], *section["transfer_figures"], *(f for c in section["candidates"] for f in c["figures"])]
    assert len(figures) == 2 + 3 and all(f.src.startswith("data:image/png;base64,") and not f.note for f in figures)
    assert section["untrustworthy"] == ["<rounded>"]
    assert [t["child"] for t in section["transfer"]] == ["cnn-int8"] and section["transfer"][0]["parent"] == "cnn"
    html = _render(section, dict(style.colors))
    assert "<rounded>" not in html and "&lt;rounded&gt;" in html  # escaped
    assert html.count('id="fig-adversarial_examples"') == 3 and 'id="fig-adversarial_curve"' in html and 'id="fig-adversarial_transfer"' in html
    assert "Not trustworthy:</strong> the figures of &lt;rounded&gt;" in html
    assert re.search(r"Warning — &lt;rounded&gt;:</strong> a black-box attack \(Square", html)
    assert "Parent → child transfer" in html and "cnn-int8 (transfer)" in html
    assert "transfer alone" in html and "square alone" in html  # the child's per-attack columns
    cnn_acc = next(e for e in data.evidence if e.candidate == "cnn" and e.metric == "adversarial_accuracy")
    assert f"<strong>{cnn_acc.interval_text()}</strong> at epsilon 0.1" in html
    cnn_min = next(e for e in data.evidence if e.candidate == "cnn" and e.metric == "median_min_epsilon")
    assert escape(f"({cnn_min.details['method']}; precision {cnn_min.details['precision']:.2g})") in html  # how it was found
    # The "at least" legend comes only with a quantile that is at least the largest radius: the CNN's minimal epsilons are all found.
    at_least = [c["name"] for c in section["candidates"] if "≥" in (c["min_epsilon"] or "")]
    assert "cnn" not in at_least and html.count("not flipped even by the largest radius") == len(at_least)


def test_model_card_line_and_an_absent_check(data):
    line = robust_accuracy_line(data, "<rounded>")
    assert line.startswith("Robust accuracy") and "Not trustworthy: " in line
    assert "Not trustworthy" not in robust_accuracy_line(data, "cnn")
    empty = replace(data, evidence=[e for e in data.evidence if e.check != "adversarial"])
    assert adversarial_section(empty, ["cnn"], PlotStyle()) is None and robust_accuracy_line(empty, "cnn") is None
