"""What a report is built from, and the small readings of it every page shares.

``ReportData`` holds exactly what the store keeps for a run, so a report can
be rebuilt at any time from stored records. The helpers here read it the same
way for the HTML page and the model card: which candidate is which, which
metrics matter, what the headline numbers are.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..checks.base import known_metrics
from ..checks.metrics import REPORT, summary_metrics
from ..evidence import SKIPPED, Evidence
from ..select import Decision


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, as the store holds it.

    Attributes:
        run_id: the run's id.
        study_name: the study's name.
        created: ISO timestamp of the run.
        task: ``Task.summary()`` plus free keys such as ``"source"``.
        candidates: one ``Candidate.describe()`` dict per candidate, in study order.
        evidence: every Evidence record of the run.
        decision: the selection's outcome, or ``None`` before there is one.
        study_text: the resolved study file (TOML).
        environment: library versions, platform and device.
        quick: the study ran made small (``assay run --quick``).
    """

    run_id: str
    study_name: str
    created: str
    task: dict[str, Any]
    candidates: list[dict[str, Any]]
    evidence: list[Evidence]
    decision: Decision | None
    study_text: str
    environment: dict[str, Any]
    quick: bool = False

    @property
    def chosen(self) -> str | None:
        return self.decision.chosen if self.decision else None

    def candidate_names(self) -> list[str]:
        """Candidates in study order, then any that only appear in evidence."""
        names = [c["name"] for c in self.candidates]
        return list(dict.fromkeys(names + [e.candidate for e in self.evidence]))

    def candidate(self, name: str) -> dict[str, Any]:
        return next((c for c in self.candidates if c.get("name") == name), {"name": name})

    def headline(self) -> dict[str, dict[str, Evidence]]:
        """candidate -> metric -> Evidence on the test split, the clean view preferred.

        This is the table ``select`` judges on (metric names are unique
        across checks); a corrupted or sliced view only stands in when no
        clean measurement exists.
        """
        out: dict[str, dict[str, Evidence]] = {}
        for e in self.measured():
            if e.split != "test":
                continue
            row = out.setdefault(e.candidate, {})
            if e.metric not in row or e.view == "clean":
                row[e.metric] = e
        return out

    def key_metrics(self) -> list[str]:
        """The policy's metrics first, then those the checks declare for the report's summary, where measured."""
        measured = {m for row in self.headline().values() for m in row}
        wanted = policy_metrics(self.decision) + summary_metrics(REPORT, known_metrics().values())
        return [m for m in dict.fromkeys(wanted) if m in measured]

    def study_description(self) -> str:
        """The study file's ``description``, or ``''`` when it has none or cannot be read."""
        try:
            return str(tomllib.loads(self.study_text).get("description", ""))
        except (tomllib.TOMLDecodeError, TypeError):
            return ""

    def measured(self) -> list[Evidence]:
        """Test-split records that hold a measurement (not a note that a check was skipped).

        The report shows test figures; the validation records the policy
        decided on are read through ``deciding`` and the decision itself.
        """
        return [e for e in self.evidence if e.metric != SKIPPED and e.split == "test"]

    def deciding(self) -> dict[str, dict[str, Evidence]]:
        """candidate -> metric -> Evidence on the split the decision was made on."""
        from ..select import evidence_table

        return evidence_table(self.evidence, self.decision.select_on if self.decision else "test")

    def records_of(self, check: str, view: str | None = None) -> list[Evidence]:
        """One check's measured test records (on ``view`` only, when given): what a check's own section shows."""
        return [e for e in self.measured() if e.check == check and (view is None or e.view == view)]

    def skip_reasons(self, check: str) -> list[str]:
        """``"candidate: reason"`` for each candidate ``check`` did not apply to."""
        return [f"{e.candidate}: {e.details.get('reason', 'no reason recorded')}" for e in self.skipped() if e.check == check]

    def skipped(self) -> list[Evidence]:
        """Records saying a check did not apply to a candidate; ``details["reason"]`` says why."""
        return [e for e in self.evidence if e.metric == SKIPPED and e.split == "test"]

    def views(self) -> list[str]:
        """Views something was measured on, in first-seen order."""
        return list(dict.fromkeys(e.view for e in self.measured()))

    def checks(self) -> list[str]:
        """Every check that left a record, measured or skipped."""
        return list(dict.fromkeys(e.check for e in self.evidence))


def policy_metrics(decision: Decision | None) -> list[str]:
    """Metric names in the decision's gates, then its objectives, each once."""
    return decision.metrics() if decision else []


def objectives(decision: Decision | None) -> list[tuple[str, bool]]:
    """``[(metric, maximise)]`` of the decision's objectives, in order."""
    return [(o.metric, o.maximise) for o in decision.objectives] if decision else []


def gate_status(decision: Decision | None, candidate: str, metric: str) -> bool | None:
    """Whether ``candidate`` passes every gate on ``metric`` (``None``: no such gate)."""
    if decision is None:
        return None
    results = [r.passed for r in decision.gate_results if r.candidate == candidate and r.gate.metric == metric]
    return all(results) if results else None


def failed_gates(decision: Decision | None) -> dict[str, list[str]]:
    """candidate -> the gates it fails, as ``"ece <= 0.05 (got 0.061)"`` (see ``failed_gate_metrics`` for the metrics alone)."""
    out: dict[str, list[str]] = {}
    for r in decision.gate_results if decision else ():
        if not r.passed:
            got = "not measured" if r.value is None else fmt_number(r.value)
            out.setdefault(r.candidate, []).append(f"{r.gate} (got {got})")
    return out


def failed_gate_metrics(decision: Decision | None) -> dict[str, list[str]]:
    """candidate -> the metrics of the gates it fails, each once."""
    out: dict[str, list[str]] = {}
    for r in decision.gate_results if decision else ():
        if not r.passed and r.gate.metric not in out.get(r.candidate, []):
            out.setdefault(r.candidate, []).append(r.gate.metric)
    return out


def arrow(higher_is_better: bool | None) -> str:
    """The direction mark a metric's column carries: ↑ higher is better, ↓ lower is better."""
    return {True: "↑", False: "↓"}.get(higher_is_better, "")


def fmt_number(x: Any, digits: int = 3) -> str:
    """A number as the rest of assay prints it: ``51,594``, ``0.989``, ``0.000412``."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        return "n/a" if x is None else str(x)
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if 0 < abs(x) < 0.001 else f"{x:.{digits}f}"


def fmt_time(iso: str) -> str:
    """``2026-11-24T21:43:30+00:00`` as ``2026-11-24 21:43 UTC``; anything else unchanged."""
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso or "unknown date"
    zone = "UTC" if when.utcoffset() is not None and not when.utcoffset() else when.strftime("%z")
    return f"{when:%Y-%m-%d %H:%M} {zone}".strip()


def arch_text(arch: dict[str, Any] | None) -> str:
    """``cnn(channels=[32, 64, 128])``: the name and the options a person chose."""
    if not arch:
        return "n/a"
    if arch.get("name") == "external":  # a model given in code: its class, and how assay calls it
        return f"{arch.get('class', '?')} ({arch.get('kind', '?')})"
    implied = {"name", "input_shape", "num_classes"}  # fixed by the task, not a choice
    options = ", ".join(f"{k}={_compact(v)}" for k, v in arch.items() if k not in implied)
    return f"{arch.get('name', '?')}({options})"


def config_text(config: dict[str, Any] | None, skip: Iterable[str] = ()) -> list[str]:
    """``["lr=0.003", "epochs=40", ...]`` for a compact provenance cell."""
    return [f"{k}={_compact(v)}" for k, v in (config or {}).items() if k not in set(skip)]


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def ordered(names: Sequence[str], first: str | None) -> list[str]:
    """``names`` with ``first`` moved to the front (when present)."""
    return ([first] if first in names else []) + [n for n in names if n != first]
