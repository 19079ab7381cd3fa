"""Every figure of the bundled examples is right: finite, inside its interval, and drawn.

Runs ``examples/digits.toml`` (the demo) and ``examples/hmda.toml`` (a table
with a group attribute) end to end, once per module, and sweeps every
evidence record: a finite value, ``low <= value <= high``, the same for the
per-class, per-group and per-slice intervals in the details, and a report
with no "Could not draw". Skipped records only need their reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assay.evidence import SKIPPED, Evidence
from assay.spec import load_study
from assay.study import Study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module", params=["digits", "hmda"])
def example_run(request, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp(request.param)
    Study(load_study(EXAMPLES / f"{request.param}.toml"), out=out, progress=False).run()
    (run,) = [p for p in out.iterdir() if (p / "evidence.jsonl").exists()]
    return request.param, run


def _records(run: Path) -> list[Evidence]:
    return [Evidence.from_dict(json.loads(line)) for line in (run / "evidence.jsonl").read_text().splitlines() if line.strip()]


def _bounds_in_details(e: Evidence) -> list[tuple[str, float, float, float]]:
    """``(where, low, value, high)`` for every interval the details carry beside a point."""
    out = []
    for row in e.details.get("per_class", []):
        if "recall" in row and row.get("recall") is not None:
            out.append((f"class {row['class']} recall", row["low"], row["recall"], row["high"]))
        elif "drop" in row and math.isfinite(row["drop"]):
            out.append((f"class {row['name']} drop", row["low"], row["drop"], row["high"]))
    for row in e.details.get("per_group", []):
        for rate in ("accuracy", "tpr", "fpr", "selection_rate"):
            if row.get(rate) is not None:
                out.append((f"group {row['group']} {rate}", row[f"{rate}_low"], row[rate], row[f"{rate}_high"]))
        if "drop" in row and math.isfinite(row["drop"]):
            out.append((f"group {row['name']} drop", row["low"], row["drop"], row["high"]))
    for row in e.details.get("worst", []):
        out.append((f"slice {row['slice']}", row["interval"][0], row["error"], row["interval"][1]))
    return out


def test_every_value_is_finite_and_inside_its_interval(example_run):
    name, run = example_run
    records = _records(run)
    assert records, f"{name}: no evidence"
    bad = []
    for e in records:
        where = f"{name}: {e.candidate} {e.check}.{e.metric} ({e.split}, {e.view})"
        if e.metric == SKIPPED:
            assert e.details.get("reason"), where
            continue
        if not math.isfinite(e.value):
            bad.append(f"{where}: value {e.value}")
        if (e.low is None) != (e.high is None):
            bad.append(f"{where}: one bound missing")
        elif e.low is not None and not (math.isfinite(e.low) and math.isfinite(e.high) and e.low <= e.value <= e.high):
            bad.append(f"{where}: {e.value} not in [{e.low}, {e.high}]")
        for label, low, value, high in _bounds_in_details(e):
            if not (low is not None and high is not None and low <= value <= high):
                bad.append(f"{where}, {label}: {value} not in [{low}, {high}]")
    assert not bad, "\n".join(bad)


def test_no_interval_claims_certainty_from_a_finite_sample(example_run):
    """A proportion of n examples is never [1, 1] or [0, 0] (the percentile bootstrap's artefact)."""
    name, run = example_run
    for e in _records(run):
        if e.metric in ("accuracy", "worst_class_recall", "worst_group_accuracy", "worst_slice_error"):
            assert e.low < e.high, f"{name}: {e.candidate} {e.metric} {e.interval_text()}"


def test_relative_mce_is_a_number_or_not_applicable_with_a_reason(example_run):
    name, run = example_run
    for e in _records(run):
        if e.metric == "relative_mce":
            assert abs(e.value) < 100 and abs(e.low) < 100 and abs(e.high) < 100, f"{name}: {e.candidate} {e.interval_text()}"
        if e.metric == SKIPPED and "relative_mce" in e.details.get("reason", ""):
            assert "not applicable" in e.details["reason"]


def test_every_figure_is_drawn(example_run):
    name, run = example_run
    html = (run / "report.html").read_text()
    assert "Could not draw" not in html, f"{name}: " + html[html.index("Could not draw"):][:300]
