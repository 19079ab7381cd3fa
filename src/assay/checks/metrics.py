"""What is known about a metric, declared once by the check that produces it.

Each check's ``metrics`` is a mapping of name -> ``Metric``: its direction,
unit, scale of values, a one-line meaning, its paired counterpart (for a
change against the parent) and whether a policy may read it. Everything that
used to keep its own list — gate validation, the report's summary columns,
the terminal summary, the compression section's pairs, the model card — reads
these declarations, so adding a check is its own file, its registration and
its tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Where a metric is a column of the summary table (in declaration order, after the policy's own metrics).
REPORT, TERMINAL = "report", "terminal"

# The values a metric can take; the contract test holds every record to its scale.
SCALES = {
    "proportion": (0.0, 1.0),  # a rate, accuracy, AUROC, ECE
    "difference": (-1.0, 1.0),  # a paired difference of two proportions
    "flag": (0.0, 1.0),  # 0 or 1; a bare gate ('beats_baseline') means '>= 1'
    "count": (0.0, math.inf),  # a whole number
    "amount": (0.0, math.inf),  # a non-negative quantity in ``unit`` (MB, ms, J…)
    "real": (-math.inf, math.inf),  # anything else (a ratio to a reference, a difference of losses)
}


@dataclass(frozen=True)
class Metric:
    """One metric a check produces.

    Attributes:
        name: the metric's name, the same string in the store, the report and the policy.
        higher_is_better: ``True``/``False`` for a direction, ``None`` for an informational figure.
        meaning: one line saying what it measures.
        unit: the unit its value is in (``"ms"``, ``"MB"``), ``""`` for a pure number.
        scale: the range of its values, a key of ``SCALES``.
        paired: for a change against the parent (``accuracy_drop``), the metric it is the change of (``accuracy``).
        sign: with ``paired``: -1 when the change is parent minus candidate (a drop), +1 when candidate minus parent (a rise).
        gateable: whether a policy's gates and objectives may read it (not a property of the data alone).
        summary: the summary tables it is a column of (``REPORT``, ``TERMINAL``).
    """

    name: str
    higher_is_better: bool | None
    meaning: str
    unit: str = ""
    scale: str = "real"
    paired: str | None = None
    sign: int = 0
    gateable: bool = True
    summary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Declarations are code, not user input: a mistake here is a bug in a check, caught on import.
        if self.scale not in SCALES:
            raise ValueError(f"metric '{self.name}': unknown scale '{self.scale}'; use one of {', '.join(SCALES)}")
        if (self.paired is None) != (self.sign == 0) or self.sign not in (-1, 0, 1):
            raise ValueError(f"metric '{self.name}': a paired change needs both 'paired' and a sign of -1 (drop) or +1 (rise)")

    def with_unit(self, text: str) -> str:
        """``text`` followed by the unit, when the metric has one: ``"0.104 [0.101, 0.110] ms"``."""
        return f"{text} {self.unit}" if self.unit else text


def declare(*metrics: Metric) -> dict[str, Metric]:
    """A check's ``metrics``: name -> Metric, in declaration order."""
    out = {m.name: m for m in metrics}
    if len(out) != len(metrics):
        raise ValueError(f"a metric is declared twice: {[m.name for m in metrics]}")
    return out


def summary_metrics(where: str, declared: Iterable[Metric]) -> list[str]:
    """The metrics shown as columns of the ``where`` summary, in declaration order."""
    return [m.name for m in declared if where in m.summary]
