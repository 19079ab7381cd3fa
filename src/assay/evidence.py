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
