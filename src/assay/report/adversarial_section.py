"""The report's Adversarial section: how much accuracy survives an attacker, and can that figure be believed?

Built from the adversarial check's records on the test split: per candidate,
robust accuracy at each epsilon with its interval and the attack that
produced it, the median minimal epsilon, the gradient-masking warnings (the
section says plainly that such a figure is not trustworthy); the robust
accuracy curves; parent -> child transfer for compressed children; a few
example perturbations (images and signals). The template partial
``templates/adversarial.html.j2`` lays it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..evidence import Evidence
from . import adversarial_plots  # noqa: F401  (registers its figures)
from .data import ReportData
from .plots import PlotStyle, Rendered, render

CHECK = "adversarial"


def adversarial_records(data: ReportData) -> list[Evidence]:
    """The adversarial check's measured test records."""
    return data.records_of(CHECK)


def robust_accuracy_line(data: ReportData, candidate: str) -> str | None:
    """One sentence for the model card: ``candidate``'s robust accuracy at the headline epsilon, and whether it can be believed."""
    by = {e.metric: e for e in adversarial_records(data) if e.candidate == candidate}
    acc = by.get("adversarial_accuracy")
    if acc is None:
        return None
    d = acc.details
    line = (f"Robust accuracy {acc.interval_text()} at epsilon {d.get('headline_epsilon', '?'):g} ({d.get('norm', '')}, "
            f"{d.get('unit', '')}) under {d.get('attack', 'the attack')}, on {d.get('n_examples', '?')} test examples.")
    if d.get("warnings"):
        line += " Not trustworthy: " + "; ".join(str(w) for w in d["warnings"]) + "."
    return line


def adversarial_section(data: ReportData, names: Sequence[str], style: PlotStyle) -> dict[str, Any] | None:
    """The section's content, or ``None`` when the adversarial check measured nothing in this run."""
    records = adversarial_records(data)
    by = {(e.candidate, e.metric): e for e in records}
    shown = [n for n in names if (n, "adversarial_accuracy") in by]
    skipped = data.skip_reasons(CHECK)
    if not shown and not skipped:
        return None
    accuracy = [by[n, "adversarial_accuracy"] for n in shown]
    curves = render("adversarial_curve", accuracy, style) if accuracy else None
    children = [e for e in accuracy if e.details.get("transfer")]
    transfer = render("adversarial_transfer", children, style) if children else None
    return {
        "split": records[0].split if records else "test",
        "candidates": [_candidate(by, n, n == data.chosen, style) for n in shown],
        "curves": [curves] if curves else [],
        "transfer": [_transfer(e) for e in children],
        "transfer_figures": [transfer] if transfer else [],
        "skipped": skipped,
        "untrustworthy": [e.candidate for e in accuracy if e.details.get("warnings")],
    }


def _candidate(by: dict[tuple[str, str], Evidence], name: str, chosen: bool, style: PlotStyle) -> dict[str, Any]:
    acc, min_eps = by[name, "adversarial_accuracy"], by.get((name, "median_min_epsilon"))
    d = acc.details
    attacks = d.get("attacks", {})
    rows = []
    for i, point in enumerate(d.get("curve", [])):
        per = {label: a["curve"][i] for label, a in attacks.items() if i < len(a.get("curve", []))}
        rows.append({"epsilon": f"{point['epsilon']:g}", "headline": point["epsilon"] == d.get("headline_epsilon"),
                     "accuracy": _cell(point), "attack": point.get("attack", ""),
                     "per_attack": [{"label": label, **_cell(p)} for label, p in per.items()] if len(per) > 1 else []})
    examples = _examples(acc, style)
    return {
        "name": name, "chosen": chosen, "headline": acc.interval_text(), "epsilon": d.get("headline_epsilon"),
        "norm": d.get("norm", ""), "unit": d.get("unit", ""), "space": d.get("space", "input"), "attack": d.get("attack", ""),
        "attacks": [{"label": label, "description": a.get("description", "")} for label, a in attacks.items()],
        "n_examples": d.get("n_examples"), "clean_accuracy": f"{d['clean_accuracy']:.3f}" if "clean_accuracy" in d else "–",
        "rows": rows, "min_epsilon": _min_epsilon(min_eps), "warnings": [str(w) for w in d.get("warnings") or []],
        "notes": [str(n) for n in d.get("notes") or []], "figures": [examples] if examples else [],
    }


def _min_epsilon(e: Evidence | None) -> str | None:
    if e is None:
        return None
    q = e.details.get("quartiles", {})
    parts = []
    for key, label in (("q25", "lower quartile"), ("median", "median"), ("q75", "upper quartile")):
        if key in q:
            row = q[key]
            lo, hi = row["interval"]
            parts.append(f"{label} {'≥ ' if row.get('at_least') else ''}{row['value']:.3g} [{lo:.3g}, {hi:.3g}]")
    text = "; ".join(parts) if parts else e.interval_text()
    if "method" in e.details:  # how it was found: read off the list, or bisected inside its brackets, and to what precision
        precision = e.details.get("precision")
        text += f" ({e.details['method']}" + (f"; precision {precision:.2g}" if precision is not None else "") + ")"
    return text


def _transfer(e: Evidence) -> dict[str, Any]:
    t = e.details["transfer"]
    return {"child": e.candidate, "parent": t["from"], "attack": t.get("attack", ""),
            "rows": [{"epsilon": f"{p['epsilon']:g}", "parent": _cell(p), "child": _cell(c)}
                     for p, c in zip(t["parent_curve"], t["child_curve"])]}


def _examples(acc: Evidence, style: PlotStyle) -> Rendered | None:
    if not acc.details.get("examples"):
        return None
    drawn = render("adversarial_examples", [acc], style)
    return replace(drawn, name=f"{drawn.name}", title=f"{drawn.title}: {acc.candidate}")


def _cell(point: dict[str, Any]) -> dict[str, str]:
    return {"value": f"{point['accuracy']:.3f}", "interval": f"[{point['low']:.3f}, {point['high']:.3f}]"}
