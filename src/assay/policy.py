"""The policy of a study file, parsed once into typed gates and objectives.

    [policy]
    gates = ["accuracy >= 0.95", "ece <= 0.05", "beats_baseline"]
    objectives = ["maximise accuracy", "minimise latency_p50_ms"]
    select_on = "val"

``Gate``, ``Objective`` and ``Policy`` are what ``select`` applies and what
the Decision keeps; the strings are parsed here and nowhere else.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .errors import SpecError, did_you_mean

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_GATE = re.compile(r"^\s*([A-Za-z_][\w.:\-\[\]]*)\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_BARE = re.compile(r"^\s*([A-Za-z_]\w*)\s*$")  # a flag alone ('beats_baseline') means 'beats_baseline >= 1'
SELECT_SPLITS = ("val", "test")
_OBJECTIVE = re.compile(r"^\s*(maximi[sz]e|minimi[sz]e)\s+([A-Za-z_][\w.:\-\[\]]*)\s*$")


class MetricInfo(Protocol):
    """What the policy reads of a metric's declaration (``checks.metrics.Metric``)."""

    gateable: bool
    scale: str


@dataclass(frozen=True)
class Gate:
    """``metric op threshold``: a candidate passes when its value satisfies it."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.condition}"

    @property
    def condition(self) -> str:
        """``">= 0.95"``: the gate without its metric."""
        return f"{self.op} {self.threshold:g}"

    def passes(self, value: float) -> bool:
        return bool(_OPS[self.op](value, self.threshold))

    @classmethod
    def parse(cls, text: str, flags: Iterable[str] = ()) -> Gate:
        """A gate from its text; a metric of ``flags`` written alone means ``metric >= 1``.

        Raises:
            SpecError: when the text is not ``metric op number``.
        """
        bare = _BARE.match(text)
        if bare and bare[1] in set(flags):
            text = f"{bare[1]} >= 1"
        m = _GATE.match(text)
        if not m:
            raise SpecError(f"cannot read gate '{text}'; write it as 'metric >= number' (ops: >=, <=, >, <, ==)")
        return cls(m[1], m[2], float(m[3]))


@dataclass(frozen=True)
class Objective:
    """``maximise metric`` or ``minimise metric``."""

    metric: str
    maximise: bool

    def __str__(self) -> str:
        return f"{'maximise' if self.maximise else 'minimise'} {self.metric}"

    @classmethod
    def parse(cls, text: str) -> Objective:
        """An objective from its text (``maximize`` and ``minimize`` too).

        Raises:
            SpecError: when the text is not ``maximise metric`` or ``minimise metric``.
        """
        m = _OBJECTIVE.match(text)
        if not m:
            raise SpecError(f"cannot read objective '{text}'; write it as 'maximise metric' or 'minimise metric'")
        return cls(m[2], m[1].startswith("maxim"))


@dataclass(frozen=True)
class Policy:
    gates: tuple[Gate, ...] = ()
    objectives: tuple[Objective, ...] = ()
    select_on: str = "val"  # the split gates and objectives are read on

    @classmethod
    def parse(cls, section: Mapping[str, object], known: Mapping[str, MetricInfo], where: str = "study.toml [policy]") -> Policy:
        """Parse and validate a ``[policy]`` table against the known metrics (name -> declaration).

        Raises:
            SpecError: naming the bad gate or objective and suggesting a fix.
        """
        for key in section:
            if key not in ("gates", "objectives", "select_on"):
                raise SpecError(f"{where}: unknown key '{key}'{did_you_mean(key, ['gates', 'objectives', 'select_on'])}")
        select_on = section.get("select_on", "val")
        if select_on not in SELECT_SPLITS:
            raise SpecError(f"{where}: select_on = {select_on!r} is not a split to decide on; use \"val\" (the default) or \"test\"")
        flags = [name for name, m in known.items() if m.scale == "flag"]
        gates = []
        for text in _strings(section.get("gates", []), where, "gates"):
            gate = _parsed(Gate.parse, text, where, flags)
            _known_metric(gate.metric, known, where, f"gate '{text}'")  # as the user wrote it
            gates.append(gate)
        objectives = []
        for text in _strings(section.get("objectives", []), where, "objectives"):
            objective = _parsed(Objective.parse, text, where)
            _known_metric(objective.metric, known, where, f"objective '{text}'")
            objectives.append(objective)
        return cls(tuple(gates), tuple(objectives), select_on)

    def metrics(self) -> set[str]:
        return {g.metric for g in self.gates} | {o.metric for o in self.objectives}


def _strings(value: object, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: '{key}' must be a list of strings, e.g. {key} = [\"accuracy >= 0.9\"]")
    return value


def _parsed(parse, text: str, where: str, *args):
    try:
        return parse(text, *args)
    except SpecError as error:
        raise SpecError(f"{where}: {error}") from None


def _known_metric(metric: str, known: Mapping[str, MetricInfo], where: str, what: str) -> None:
    if metric not in known:
        raise SpecError(f"{where}: unknown metric '{metric}' in {what}{did_you_mean(metric, known)}")
    if not known[metric].gateable:
        raise SpecError(f"{where}: {what} reads '{metric}', which describes the data, the same for every candidate, so it cannot "
                        f"tell candidates apart; use a metric of the candidate instead")
