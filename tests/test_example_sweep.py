"""Every figure of the bundled examples is right: finite, inside its interval, and drawn.

Runs ``examples/digits.toml`` (the demo) as it is, and every example in quick
mode (``StudySpec.quick_version``: small samples, few epochs, the same checks
and report), once per module, and sweeps every evidence record: a finite
value, ``low <= value <= high``, the same for the per-class, per-group and
per-slice intervals in the details, and a report with no "Could not draw".
Skipped records only need their reason. ``benchmarks/example_sweep.py``
sweeps the full runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.evidence import SKIPPED, Evidence, problems
from assay.spec import load_study
from assay.store import Store
from assay.study import Study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


RUNS = [("digits", False), *((p.stem, True) for p in sorted(EXAMPLES.glob("*.toml")))]


@pytest.fixture(scope="module", params=RUNS, ids=[f"{'quick-' if quick else ''}{name}" for name, quick in RUNS])
def example_run(request, tmp_path_factory) -> tuple[str, Path]:
    name, quick = request.param
    out = tmp_path_factory.mktemp(name)
    Study(load_study(EXAMPLES / f"{name}.toml"), out=out, progress=False, quick=quick).run()
    (run,) = [p for p in out.iterdir() if (p / "evidence.jsonl").exists()]
    html = (run / "report.html").read_text()
    assert ("Quick run" in html) == quick, f"{name}: a quick run's report says so, a full one's does not"
    return name, run


def _records(run: Path) -> list[Evidence]:
    return Store(run.parent).load_evidence(run.name)  # the store's checked read, as the report uses


def test_every_value_is_finite_and_inside_its_interval(example_run):
    """Every record: a finite value inside its interval, the details' intervals too, no zero-width proportion."""
    name, run = example_run
    records = _records(run)
    assert records, f"{name}: no evidence"
    found = [p for e in records for p in problems(e)]
    assert not found, "\n".join(found)


def test_the_sweep_can_fail():
    """Negative control: the records the old percentile bootstrap wrote are caught."""
    caught = problems(Evidence("performance", "accuracy", "cnn", 1.0, 1.0, 1.0))
    caught += problems(Evidence("calibration", "ece", "mlp", 0.026, 0.029, 0.063))
    caught += problems(Evidence("performance", "worst_class_recall", "mlp", 0.9, 0.8, 0.95,
                                details={"per_class": [{"class": "3", "recall": 0.923, "low": 0.777, "high": 0.922}]}))
    caught += problems(Evidence("robustness", "relative_mce", "mlp", float("nan")))
    assert len(caught) == 4, caught


def test_relative_mce_is_a_number_or_not_applicable_with_a_reason(example_run):
    name, run = example_run
    for e in _records(run):
        if e.metric in ("mce", "relative_mce") and e.candidate == e.details.get("reference"):
            assert e.value == 1.0 and e.low is None, f"{name}: the reference's {e.metric} is 1 by definition, not an estimate"
        if e.metric == "relative_mce":
            bounds = [] if e.low is None else [e.low, e.high]
            assert all(abs(v) < 100 for v in (e.value, *bounds)), f"{name}: {e.candidate} {e.interval_text()}"
        if e.metric == SKIPPED and "relative_mce" in e.details.get("reason", ""):
            assert "not applicable" in e.details["reason"]


def test_every_figure_is_drawn(example_run):
    name, run = example_run
    html = (run / "report.html").read_text()
    assert "Could not draw" not in html, f"{name}: " + html[html.index("Could not draw"):][:300]
