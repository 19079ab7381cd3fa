"""Evidence: one measured fact, about a candidate, a candidate against another, or the data.

Every layer that measures (checks, the data audit, serving's drift monitor)
writes Evidence; the store, the policy and the report read it. It imports
nothing of assay, so any layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SKIPPED = "skipped"  # the metric name of a record saying a check did not apply
DATA = "(data)"  # the subject of a finding about the data itself (the audit), not about a candidate


@dataclass(frozen=True)
class Evidence:
    """One measured fact about a subject: a candidate, a candidate against a reference, or the data.

    Attributes:
        check: the check that measured it, e.g. ``"calibration"``.
        metric: the metric's name, the same string in store, report and policy.
        candidate: the candidate's name in the study, or ``DATA`` for a finding about the data.
        value: the point estimate.
        low, high: the 95% interval (``None`` when none applies).
        higher_is_better: direction for ranking (``None``: informational).
        split, view: what data it was measured on.
        details: JSON-able data behind the number (per class, bins, ...).
        figures: names of the plots the report draws from ``details``.
        reference: the candidate this one is measured against (a paired
            difference), or ``None``.
    """

    check: str
    metric: str
    candidate: str
    value: float
    low: float | None = None
    high: float | None = None
    higher_is_better: bool | None = None
    split: str = "test"
    view: str = "clean"
    details: Mapping[str, Any] = field(default_factory=dict)
    figures: tuple[str, ...] = ()
    reference: str | None = None

    @property
    def subject(self) -> tuple[str, ...]:
        """``("data",)``, ``("candidate", name)`` or ``("pair", name, reference)``."""
        if self.candidate == DATA:
            return ("data",)
        return ("candidate", self.candidate) if self.reference is None else ("pair", self.candidate, self.reference)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["figures"] = list(self.figures)
        out["details"] = dict(self.details)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(**{**data, "figures": tuple(data.get("figures", ()))})

    def interval_text(self, digits: int = 3) -> str:
        """``0.981 [0.967, 0.993]`` or just the value (bounds without thousands commas, so the comma separates them)."""
        text = _fmt(self.value, digits)
        if self.low is not None and self.high is not None:
            text += f" [{_fmt(self.low, digits, commas=False)}, {_fmt(self.high, digits, commas=False)}]"
        return text


def _fmt(x: float, digits: int, commas: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 1000 or (float(x).is_integer() and abs(x) >= 2):
        return f"{x:,.0f}" if commas else f"{x:.0f}"
    return f"{x:.{digits}g}" if 0 < abs(x) < 0.001 else f"{x:.{digits}f}"


PROPORTIONS = ("accuracy", "macro_f1", "balanced_accuracy", "worst_class_recall", "worst_group_accuracy", "worst_slice_error")  # counts of examples: never a zero-width interval


def problems(e: Evidence) -> list[str]:
    """What is wrong with a record, in words; empty when nothing is.

    A measured value is finite and lies inside its interval, and so does
    every interval the details carry beside a point (per class, per group, per
    slice); a proportion of examples never has a zero-width interval; a
    skipped record says why.
    """
    where = f"{e.candidate} {e.check}.{e.metric} ({e.split}, {e.view})"
    if e.metric == SKIPPED:
        return [] if e.details.get("reason") else [f"{where}: skipped without a reason"]
    out = []
    if not math.isfinite(e.value):
        out.append(f"{where}: value {e.value}")
    if (e.low is None) != (e.high is None):
        out.append(f"{where}: one bound missing")
    elif e.low is not None:
        if not (math.isfinite(e.low) and math.isfinite(e.high) and e.low <= e.value <= e.high):
            out.append(f"{where}: {e.value} not in [{e.low}, {e.high}]")
        elif e.metric in PROPORTIONS and not e.low < e.high:
            out.append(f"{where}: a proportion of a finite sample with the zero-width interval [{e.low}, {e.high}]")
    for label, low, value, high in _detail_intervals(e):
        if not (low is not None and high is not None and low <= value <= high):
            out.append(f"{where}, {label}: {value} not in [{low}, {high}]")
    return out


def _detail_intervals(e: Evidence) -> list[tuple[str, float | None, float, float | None]]:
    """``(where, low, value, high)`` for every interval the details carry beside a point."""
    out = []
    for row in e.details.get("per_class", []):
        if row.get("recall") is not None:
            out.append((f"class {row['class']} recall", row.get("low"), row["recall"], row.get("high")))
        elif "drop" in row and math.isfinite(row["drop"]):
            out.append((f"class {row['name']} drop", row.get("low"), row["drop"], row.get("high")))
    for row in e.details.get("per_group", []):
        for rate in ("accuracy", "tpr", "fpr", "selection_rate"):
            if row.get(rate) is not None:
                out.append((f"group {row['group']} {rate}", row.get(f"{rate}_low"), row[rate], row.get(f"{rate}_high")))
        if "drop" in row and math.isfinite(row["drop"]):
            out.append((f"group {row['name']} drop", row.get("low"), row["drop"], row.get("high")))
    for row in e.details.get("worst", []):
        out.append((f"slice {row['slice']}", row["interval"][0], row["error"], row["interval"][1]))
    return out
