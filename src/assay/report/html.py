"""The HTML report: one self-contained page, rebuilt from stored records.

``build_context`` turns ReportData into plain rows and cells; the Jinja2
template (autoescaped, so every user string is escaped) only lays them out.
Figures are inline ``data:`` PNGs and the CSS is embedded: the file opens
offline, needs no JavaScript, and can be mailed or attached to a ticket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..evidence import Evidence
from ..select import Gate
from .data import (
    ReportData,
    arch_text,
    arrow,
    config_text,
    failed_gate_metrics,
    failed_gates,
    fmt_number,
    fmt_time,
    gate_status,
    objectives,
)
from . import battery_plots, compression_plots  # noqa: F401  (register their figures)
from .adversarial_section import adversarial_section
from .compression import compression_section
from .explain_section import explain_section
from .poisoning_section import poisoning_section
from .label_efficiency import label_efficiency_section
from .label_efficiency_plots import render_label_efficiency
from .findings import worst_findings
from .plots import PlotStyle, render
from .run_plots import render_pareto, render_training_curves

_TEMPLATES = Path(__file__).parent / "templates"
# Task keys shown in their own place, not in the generic list of facts.
_TASK_SHOWN = {"name", "description", "classes", "sizes", "class_counts", "modality", "input_shape", "groups", "metadata", "transforms"}


def render_html(data: ReportData) -> str:
    """The report page for ``data`` as one HTML string."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the tests instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**build_context(data))


def notebook_html(data: ReportData) -> str:
    """The report's decision box and summary table for a notebook cell.

    Cut from the full page, so a notebook shows exactly what the report's top
    shows, inside an ``iframe`` so the report's styles do not restyle the
    notebook.
    """
    import html

    page = render_html(data)
    head = page[: page.index("<main>")]
    verdict = page[page.index('<section class="verdict'): page.index('<nav class="toc">')]
    summary = page[page.index('<section id="summary">'): page.index('<section id="task">')]
    document = f"{head}<main>{verdict}{summary}</main></body></html>"
    return (f'<iframe srcdoc="{html.escape(document, quote=True)}" title="assay: {html.escape(data.study_name)}" '
            'style="width: 100%; height: 520px; border: 1px solid #ddd; border-radius: 8px;"></iframe>')


def build_context(data: ReportData) -> dict[str, Any]:
    """Everything the template shows, as plain dicts, lists and strings."""
    names = data.candidate_names()
    style = PlotStyle.for_candidates(names, data.chosen)
    headline = data.headline()
    # Checks with a section of their own instead of the generic one.
    own = {"explain": explain_section(data, names, style), "adversarial": adversarial_section(data, names, style),
           "poisoning": poisoning_section(data, names, style)}
    return {
        "data": data,
        "created": fmt_time(data.created),
        "verdict": _verdict(data),
        "summary": _summary(data, names, headline),
        "findings": worst_findings(data.measured(), names),
        "task": _task(data.task),
        "candidates": [_provenance(data.candidate(n), n == data.chosen) for n in names],
        "training_figure": render_training_curves(data.candidates, style),
        "checks": [_check_section(data, check, names, style) for check in data.checks() if not own.get(check)],
        "explanations": own["explain"],
        "adversarial": own["adversarial"],
        "poisoning": own["poisoning"],
        "decision": _decision(data, names),
        "pareto_figure": render_pareto(data.decision, headline, style),
        "label_figure": render_label_efficiency(data.candidates, headline, data.task),
        "label_efficiency": label_efficiency_section(data.candidates, headline, data.task),
        "compression": compression_section(data, names, style),
        "colors": style.colors,
        "environment": sorted(data.environment.items()),
        "description": data.study_description(),
    }


def _cell(e: Evidence | None, mark: bool | None = None) -> dict[str, Any]:
    if e is None:
        return {"value": "–", "interval": "", "mark": mark}
    value, _, rest = e.interval_text().partition(" [")
    return {"value": value, "interval": f"[{rest}" if rest else "", "mark": mark}


def _verdict(data: ReportData) -> dict[str, Any]:
    d = data.decision
    if d is None:
        return {"kind": "none", "chosen": None, "reason": "No decision is recorded for this run yet.", "failures": {}, "notes": [], "warnings": []}
    notes, warnings = _decision_notes(data)
    if d.chosen is None:
        return {"kind": "fail", "chosen": None, "reason": "No candidate passes every gate.", "failures": failed_gates(d), "notes": notes, "warnings": warnings}
    return {"kind": "ok", "chosen": d.chosen, "reason": d.reason, "failures": {}, "notes": notes, "warnings": warnings}


def _decision_notes(data: ReportData) -> tuple[list[str], list[str]]:
    """Sentences under the verdict: where the decision was read, the trivial baseline, failed candidates."""
    d = data.decision
    notes, warnings = [], []
    others = len(data.candidate_names()) - 1
    if data.quick:
        warnings.append("Quick run (assay run --quick): every split was cut to a sample, and each recipe trained for a few epochs. "
                        "It shows that the study runs end to end; run it in full before deciding anything.")
    if d.select_on == "test":
        warnings.append(f"The gates and objectives were read on the test split (select_on = \"test\"): the chosen candidate's test figures "
                        f"are flattered by the choice among {others + 1} candidates and are not an unbiased estimate. Decide on \"val\" (the default) instead.")
    elif d.chosen:
        notes.append(f"Decided on the validation split; the figures below are on the test split, which played no part in the choice, "
                     f"so {d.chosen}'s are an unbiased estimate.")
    if d.tied:
        notes.append(f"{d.chosen} is statistically tied with {', '.join(d.tied)} on the last objective; the pick follows the point estimate.")
    headline = data.headline()
    base = next((row["baseline_accuracy"] for row in headline.values() if "baseline_accuracy" in row), None)
    if base is not None:
        rule = base.details.get("rule", "the majority class")
        line = f"Trivial baseline: {rule} scores accuracy {base.interval_text()} on the test split."
        if d.chosen and "accuracy_gain_over_baseline" in headline.get(d.chosen, {}):
            gain = headline[d.chosen]["accuracy_gain_over_baseline"]
            line += f" {d.chosen} {'beats' if gain.low is not None and gain.low > 0 else 'does not clearly beat'} it: paired gain {gain.interval_text()}."
        notes.append(line)
        losers = [n for n, row in headline.items() if "beats_baseline" in row and row["beats_baseline"].value < 1]
        if losers:
            warnings.append(f"Not better than the trivial baseline on test (the gain's 95% interval reaches 0 or below): {', '.join(losers)}.")
    for name, reason in (d.failed or {}).items():
        warnings.append(f"{name} failed and was not judged: {reason}")
    return notes, warnings


def _summary(data: ReportData, names: Sequence[str], headline: Mapping[str, Mapping[str, Evidence]]) -> dict[str, Any]:
    metrics = data.key_metrics()
    gates = data.decision.gates if data.decision else ()
    goals = dict(objectives(data.decision))
    first = {m: next((row[m] for row in headline.values() if m in row), None) for m in metrics}
    columns = [{"metric": m, "arrow": arrow(first[m].higher_is_better if first[m] else None),
                "policy": _policy_note(m, gates, goals)} for m in metrics]
    # Parameter counts live in every candidate's provenance even when the efficiency check did not run.
    extra_params = "parameters" not in metrics and any("parameters" in data.candidate(n) for n in names)
    if extra_params:
        columns.append({"metric": "parameters", "arrow": "", "policy": ""})
    failures = failed_gates(data.decision)
    rows = []
    for n in names:
        row = headline.get(n, {})
        cells = [_cell(row.get(m), gate_status(data.decision, n, m)) for m in metrics]
        if extra_params:
            cells.append({"value": fmt_number(data.candidate(n).get("parameters")), "interval": "", "mark": None})
        rows.append({"name": n, "chosen": n == data.chosen, "cells": cells, "status": _status(data, n, failures)})
    base = next((row["baseline_accuracy"] for row in headline.values() if "baseline_accuracy" in row), None)
    if base is not None:  # the trivial rule as a row of its own, where its figures mean the same thing
        balanced = next((row["baseline_balanced_accuracy"] for row in headline.values() if "baseline_balanced_accuracy" in row), None)
        own = {"accuracy": base, "balanced_accuracy": balanced}
        cells = [_cell(own.get(m)) if m in own else {"value": "", "interval": "", "mark": None} for m in metrics]
        cells += [{"value": "", "interval": "", "mark": None}] * extra_params
        rows.append({"name": f"baseline: {base.details.get('rule', 'majority class')}", "chosen": False, "cells": cells,
                     "status": {"kind": "", "text": "trivial reference, not a candidate"}, "baseline": True})
    return {"columns": columns, "rows": rows}


def _policy_note(metric: str, gates: Sequence[Gate], goals: Mapping[str, bool]) -> str:
    """``"gate ≥ 0.95 · maximise"``: what the policy asks of this metric."""
    notes = ["gate " + g.condition.replace(">=", "≥").replace("<=", "≤") for g in gates if g.metric == metric]
    if metric in goals:
        notes.append("maximise" if goals[metric] else "minimise")
    return " · ".join(notes)


def _status(data: ReportData, name: str, failures: Mapping[str, list[str]]) -> dict[str, str]:
    d = data.decision
    if d is None:
        return {"kind": "", "text": ""}
    if name == d.chosen:
        return {"kind": "chosen", "text": "chosen"}
    if d.is_reference(name):
        return {"kind": "", "text": "the parent: relative gates judge its variants"}
    if name in failures:
        return {"kind": "fail", "text": "fails " + ", ".join(failed_gate_metrics(d)[name]), "detail": "; ".join(failures[name])}
    if name in d.pareto:
        return {"kind": "front", "text": "on the Pareto front"}
    if name in d.passed:
        return {"kind": "pass", "text": "passes the gates; dominated"}
    return {"kind": "", "text": ""}


def _task(task: Mapping[str, Any]) -> dict[str, Any]:
    classes = [str(c) for c in task.get("classes", [])]
    counts = _split_order(task.get("class_counts") or {})
    splits = list(counts)
    sizes = _split_order(task.get("sizes") or {})
    facts = [("Task", task.get("name", "")), ("Modality", task.get("modality", "")),
             ("Input shape", " × ".join(map(str, task.get("input_shape", []))) or "n/a"),
             ("Classes", f"{len(classes)}: {', '.join(classes[:30])}{' …' if len(classes) > 30 else ''}"),
             ("Split sizes", ", ".join(f"{k} {fmt_number(v)}" for k, v in sizes.items()))]
    if task.get("groups"):
        facts.append(("Group attributes", ", ".join(map(str, task["groups"]))))
    if task.get("metadata"):
        facts.append(("Metadata columns", ", ".join(map(str, task["metadata"]))))
    facts += [(str(k).capitalize(), _plain(v)) for k, v in task.items() if k not in _TASK_SHOWN]
    rows = [{"name": c, "counts": [fmt_number(counts[s][i] if i < len(counts[s]) else 0) for s in splits]} for i, c in enumerate(classes)]
    totals = [fmt_number(sum(counts[s])) for s in splits]
    return {"description": task.get("description", ""), "facts": facts, "splits": splits, "rows": rows, "totals": totals}


def _split_order(by_split: Mapping[str, Any]) -> dict[str, Any]:
    # The store sorts keys; people read train, val, test, pool.
    rank = {"train": 0, "val": 1, "test": 2, "pool": 3}
    return dict(sorted(by_split.items(), key=lambda kv: (rank.get(kv[0], 9), kv[0])))


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _provenance(c: Mapping[str, Any], chosen: bool) -> dict[str, Any]:
    training = c.get("training") or {}
    if training:
        trained = f"{training.get('epochs_run', '?')} epochs, kept epoch {training.get('best_epoch', '?')}"
        trained += ", stopped early" if training.get("stopped_early") else ""
        if training.get("train_seconds") is not None:
            trained += f", {training['train_seconds']:.1f} s"
    else:
        trained = "not trained here" if c.get("parent") else "outside assay" if c.get("recipe") == "external" else "–"
    arch = c.get("arch") or {}
    return {
        "name": c["name"], "chosen": chosen, "recipe": c.get("recipe", "–"), "parent": c.get("parent") or "–",
        "arch": arch_text(arch) if arch else "–", "parameters": fmt_number(c.get("parameters")), "seed": c.get("seed", "–"),
        "id": c.get("id", "–"), "data_hash": (c.get("data_hash") or "–")[:12], "training": trained,
        "config": config_text(c.get("config"), skip=("arch", "arch_options")),
        "transforms": ", ".join(c.get("transforms") or []),
        "versions": ", ".join(f"{k} {v}" for k, v in (c.get("versions") or {}).items()),
        "notes": [str(n) for n in c.get("notes") or []],  # e.g. a model given in code in training mode, judged in eval mode
    }


def _check_section(data: ReportData, check: str, names: Sequence[str], style: PlotStyle) -> dict[str, Any]:
    records = data.records_of(check)
    skipped = data.skip_reasons(check)
    keys = list(dict.fromkeys((e.metric, e.split, e.view) for e in records))
    by_key = {(e.candidate, e.metric, e.split, e.view): e for e in records}
    columns = [{"metric": m, "where": "" if (s, v) == ("test", "clean") else f"{v} · {s}",
                "arrow": arrow(next(e.higher_is_better for e in records if (e.metric, e.split, e.view) == (m, s, v)))}
               for m, s, v in keys]
    rows = [{"name": n, "chosen": n == data.chosen, "cells": [_cell(by_key.get((n, *k))) for k in keys]}
            for n in names if any((n, *k) in by_key for k in keys)]
    groups: dict[tuple[str, str, str, str], list[Evidence]] = {}
    for e in records:
        for fig in e.figures:
            groups.setdefault((fig, e.metric, e.split, e.view), []).append(e)
    figures = []
    for (fig, _, split, view), group in groups.items():
        group.sort(key=lambda e: names.index(e.candidate) if e.candidate in names else len(names))
        drawn = render(fig, group, style)
        if (split, view) != ("test", "clean"):
            drawn = replace(drawn, title=f"{drawn.title} ({view}, {split})")
        figures.append(drawn)
    warnings = _said(records, "warnings")
    return {"name": check, "columns": columns, "rows": rows, "figures": figures, "skipped": skipped,
            "warnings": warnings, "notes": [n for n in _said(records, "notes") if n not in warnings]}


def _said(records: Sequence[Evidence], key: str) -> list[dict[str, str]]:
    """Each candidate's ``details[key]`` sentences (warnings, notes), once each: a pair of records may repeat them."""
    seen = dict.fromkeys((e.candidate, str(text)) for e in records for text in e.details.get(key) or ())
    return [{"candidate": c, "text": t} for c, t in seen]


def _decision(data: ReportData, names: Sequence[str]) -> dict[str, Any] | None:
    d = data.decision
    if d is None:
        return None
    results = {(r.candidate, r.gate): r for r in d.gate_results}
    rows = []
    for n in names:
        cells = []
        for g in d.gates:
            r = results.get((n, g))
            cells.append({"value": "–" if r is None else ("not measured" if r.value is None else fmt_number(r.value)),
                          "passed": None if r is None else r.passed})
        rows.append({"name": n, "chosen": n == d.chosen, "cells": cells, "passed": n in d.passed, "front": n in d.pareto})
    split = "validation" if d.select_on == "val" else "test"
    for name, reason in (d.failed or {}).items():
        rows.append({"name": name, "chosen": False, "cells": [{"value": "failed", "passed": False} for _ in d.gates], "passed": False, "front": False,
                     "failed": reason})
    return {"gates": list(d.gates), "objectives": list(d.objectives), "rows": rows, "reason": d.reason, "split": split}
