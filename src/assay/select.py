"""The pick: gates applied, the Pareto front over the objectives, statistical ties, the Decision.

A policy (``policy.py``) is written in the study file::

    [policy]
    gates = ["accuracy >= 0.95", "ece <= 0.05"]
    objectives = ["maximise accuracy", "minimise latency_p50_ms"]

    select_on = "val"                # the default; "test" is possible and the report warns

Gates filter; among candidates that pass every gate, the Pareto front over the
objectives is built, and the pick is made lexicographically with statistical
ties: the first objective decides unless the best candidate and another
front member are statistically indistinguishable (at least one of the two
values lies inside the other's 95% interval), in which case the next
objective breaks the tie. That keeps "0.981 vs 0.978 on 270 test images"
from outweighing a 3x faster model. A tie on the last objective is said in
the decision, and the higher point estimate is picked.

Gates and objectives are read on the validation split by default, so the
winner's test figures stay an unbiased estimate: with many candidates, the
best test score is flattered by the choice itself. Failed candidates (a
training that diverged) are listed, never chosen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .evidence import Evidence
from .policy import Gate, Objective, Policy  # Policy re-exported: callers import it with select


@dataclass(frozen=True)
class GateResult:
    """One candidate judged on one gate, with the value it was judged on (``None``: not measured)."""

    candidate: str
    gate: Gate
    value: float | None
    passed: bool


@dataclass(frozen=True)
class Decision:
    """The outcome of selection, as stored and reported.

    Attributes:
        chosen: the picked candidate's name, or ``None`` when none passed.
        reason: one or two sentences a person can read.
        gates, objectives: the policy, parsed (stored as their text, ``"accuracy >= 0.95"``).
        passed: candidates that pass every gate.
        pareto: the Pareto front among those.
        gate_results: every (candidate, gate) with the value it was judged on.
        select_on: the split the gates and objectives were read on.
        tied: candidates statistically tied with the chosen one on the
            objective that decided, when no later objective could break it.
        failed: candidates that could not be made (name -> one-line reason).
    """

    chosen: str | None
    reason: str
    gates: tuple[Gate, ...]
    objectives: tuple[Objective, ...]
    passed: tuple[str, ...]
    pareto: tuple[str, ...]
    gate_results: tuple[GateResult, ...]
    select_on: str = "val"
    tied: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able, gates and objectives as their text (the form every stored decision has)."""
        return {
            "chosen": self.chosen, "reason": self.reason,
            "gates": [str(g) for g in self.gates], "objectives": [str(o) for o in self.objectives],
            "passed": list(self.passed), "pareto": list(self.pareto),
            "gate_results": [{"candidate": r.candidate, "gate": str(r.gate), "value": r.value, "passed": r.passed} for r in self.gate_results],
            "select_on": self.select_on, "tied": list(self.tied), "failed": dict(self.failed),
        }

    def metrics(self) -> list[str]:
        """Metric names the gates read, then the objectives, each once."""
        return list(dict.fromkeys([g.metric for g in self.gates] + [o.metric for o in self.objectives]))

    def is_reference(self, name: str) -> bool:
        """True when ``name`` fails only relative gates (``*_drop``) it has no measurement for: the parent variants are compared with."""
        failed = [r for r in self.gate_results if r.candidate == name and not r.passed]
        return bool(failed) and all(r.value is None and r.gate.metric.endswith("_drop") for r in failed)

    @classmethod
    def from_dict(cls, data: Mapping) -> Decision:
        """Read back ``to_dict``'s form; gate and objective texts are parsed again (flags were written out in full)."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        fields.setdefault("select_on", "test")  # decisions stored before selection moved to validation were made on test
        fields["gates"] = tuple(Gate.parse(g) for g in data["gates"])
        fields["objectives"] = tuple(Objective.parse(o) for o in data["objectives"])
        fields["gate_results"] = tuple(GateResult(**{**g, "gate": Gate.parse(g["gate"])}) for g in data["gate_results"])
        return cls(**fields)


def evidence_table(evidence: Iterable[Evidence], split: str = "test") -> dict[str, dict[str, Evidence]]:
    """candidate -> metric -> Evidence on ``split``, the clean view preferred (metric names are unique across checks)."""
    out: dict[str, dict[str, Evidence]] = {}
    for e in evidence:
        if e.split == split:
            row = out.setdefault(e.candidate, {})
            if e.metric not in row or e.view == "clean":
                row[e.metric] = e
    return out


def pareto_front(values: Mapping[str, Sequence[float]], maximise: Sequence[bool]) -> list[str]:
    """Names whose objective vectors no other vector dominates.

    ``b`` dominates ``a`` when it is at least as good on every objective and
    strictly better on one.
    """

    def better_eq(u: float, v: float, up: bool) -> bool:
        return u >= v if up else u <= v

    front = []
    for a, va in values.items():
        dominated = any(
            all(better_eq(vb[i], va[i], up) for i, up in enumerate(maximise)) and tuple(vb) != tuple(va)
            for b, vb in values.items()
            if b != a
        )
        if not dominated:
            front.append(a)
    return front


def select(
    evidence: Sequence[Evidence], candidates: Sequence[str], policy: Policy, *, failed: Mapping[str, str] | None = None,
    draws: Mapping[str, str] | None = None,
) -> Decision:
    """Apply gates on ``policy.select_on``, build the Pareto front, and pick one candidate.

    Args:
        failed: candidates that could not be made, with the reason; listed in
            the decision and never chosen.
        draws: candidate -> recipe, for recipes repeated over labelled draws.
            Such a recipe is judged as one entry, on the mean over its draws
            (t-interval), so a lucky draw cannot win; when it is picked, its
            best draw on the deciding split ships.
    """
    failed = dict(failed or {})
    candidates = [n for n in candidates if n not in failed]
    table = evidence_table(evidence, policy.select_on)
    members: dict[str, list[str]] = {}
    if draws:
        table, candidates, members = _by_recipe(table, candidates, {n: r for n, r in draws.items() if n in candidates})
    results = []
    for name in candidates:
        for gate in policy.gates:
            e = table.get(name, {}).get(gate.metric)
            value = None if e is None else e.value
            results.append(GateResult(name, gate, value, value is not None and gate.passes(value)))
    passed = [n for n in candidates if all(r.passed for r in results if r.candidate == n)]
    common = dict(
        gates=policy.gates,
        objectives=policy.objectives,
        passed=tuple(passed),
        gate_results=tuple(results),
        select_on=policy.select_on,
        failed=failed,
    )
    where = f"on the {'validation' if policy.select_on == 'val' else 'test'} split"
    if not passed:
        failures = [f"{r.candidate}: {r.gate} (got {_show(r.value)})" for r in results if not r.passed]
        failures += [f"{name}: {reason}" for name, reason in failed.items()]
        return Decision(None, f"No candidate passes every gate {where}. Failed: " + "; ".join(failures) + ".", pareto=(), **common)

    objectives = policy.objectives or (Objective("accuracy", True),)
    scored = {n: table.get(n, {}) for n in passed}
    usable = [n for n in passed if all(o.metric in scored[n] for o in objectives)]
    if not usable:
        return Decision(passed[0], f"{passed[0]} passes every gate; no objective could be measured, so the first listed is chosen.", pareto=tuple(passed), **common)
    vectors = {n: [scored[n][o.metric].value for o in objectives] for n in usable}
    front = pareto_front(vectors, [o.maximise for o in objectives])
    chosen, why, tied = _pick(front, scored, objectives, usable)
    gate_text = f"passes all {len(policy.gates)} gate(s)" if policy.gates else "no gates set"
    reason = f"Read {where}: {chosen} {gate_text} and is on the Pareto front of {len(front)} ({', '.join(front)}); {why}"
    if chosen in members:
        first = objectives[0]
        sign = 1 if first.maximise else -1
        recipe, chosen = chosen, max(members[chosen], key=lambda n: sign * table[n][first.metric].value if first.metric in table.get(n, {}) else -math.inf)
        reason += (f" {recipe} is judged on the mean over its {len(members[recipe])} labelled draws (t-interval), not on its luckiest draw;"
                   f" {chosen} ships, its best draw on {first.metric} {where}.")
    return Decision(chosen, reason, pareto=tuple(front), tied=tuple(tied), **common)


def _by_recipe(
    table: Mapping[str, Mapping[str, Evidence]], candidates: Sequence[str], draws: Mapping[str, str]
) -> tuple[dict[str, dict[str, Evidence]], list[str], dict[str, list[str]]]:
    """Replace the draws of each repeated recipe by one entry: every metric's mean over draws, with its t-interval."""
    from dataclasses import replace

    from .stats import t_interval

    members: dict[str, list[str]] = {}
    for name in candidates:
        if name in draws:
            members.setdefault(draws[name], []).append(name)
    out = {name: dict(row) for name, row in table.items()}
    for recipe, names in members.items():
        rows = [table.get(n, {}) for n in names]
        row = {}
        for metric in set.intersection(*(set(r) for r in rows)) if rows else ():
            values = [r[metric].value for r in rows]
            mean = sum(values) / len(values)
            low, high = t_interval(values) if len(values) > 1 else (rows[0][metric].low, rows[0][metric].high)
            row[metric] = replace(rows[0][metric], candidate=recipe, value=mean, low=low, high=high, details={"draws": names})
        out[recipe] = row
    order = list(dict.fromkeys(draws.get(n, n) for n in candidates))
    return out, order, members


def _pick(front: list[str], scored: Mapping[str, Mapping[str, Evidence]], objectives: Sequence[Objective], usable: Sequence[str]) -> tuple[str, str, list[str]]:
    """Lexicographic pick where a later objective only breaks statistical ties.

    Returns the pick, the sentence that explains it, and the candidates still
    tied with it when the last objective could not separate them. With a
    single objective the front is the best alone, so its ties are looked for
    among every candidate that passed the gates.
    """
    pool = list(front)
    notes = []
    for i, objective in enumerate(objectives):
        sign = 1 if objective.maximise else -1
        best = max(pool, key=lambda n: sign * scored[n][objective.metric].value)
        e = scored[best][objective.metric]
        among = usable if len(objectives) == 1 else pool
        tied = [n for n in among if n == best or _overlap(e, scored[n][objective.metric])]
        if len(tied) == 1:
            notes.append(f"it is best on {objective.metric} ({e.interval_text()})")
            return best, " ".join(notes) + ".", []
        rule = "at least one of each pair's values lies inside the other's 95% interval"
        if i + 1 < len(objectives):
            notes.append(f"{', '.join(tied)} are statistically tied on {objective.metric} ({rule}), so {objectives[i + 1].metric} decides;")
            pool = tied
            continue
        others = [n for n in tied if n != best]
        notes.append(f"it has the best point estimate on {objective.metric} ({e.interval_text()}), but it is statistically tied with "
                     f"{', '.join(others)} ({rule}) and no further objective breaks the tie: the difference may be noise")
        return best, " ".join(notes) + ".", others
    return pool[0], " ".join(notes) + ".", []


def _overlap(a: Evidence, b: Evidence) -> bool:
    """True when either value lies inside the other's 95% interval."""

    def inside(x: float, e: Evidence) -> bool:
        return e.low is not None and e.high is not None and e.low <= x <= e.high

    return inside(a.value, b) or inside(b.value, a)


def _show(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4g}"
