"""The report's Poisoning section: planted training examples, per candidate, and the backdoor's success.

Built from the poisoning check's records on the test split: per candidate the
attack success rate on the trigger view (a task poisoned by ``[task]
poison``), the share of training examples flagged, per class the estimated
poisoned share and why a class was or was not called poisoned, precision,
recall and false-positive rate against the truth when the study planted the
poison itself, and the most suspicious examples drawn (images, signals) or
quoted (texts). ``templates/poisoning.html.j2`` lays it out; the model card
line is ``model_card_lines``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..evidence import Evidence
from . import poisoning_plots  # noqa: F401  (registers its figures)
from .data import ReportData
from .plots import PlotStyle, render

CHECK = "poisoning"
FOUND = "suspected_poison_fraction"
AGAINST_TRUTH = ("poison_recall", "poison_precision", "poison_false_positive_rate")


def poisoning_records(data: ReportData) -> list[Evidence]:
    """The poisoning check's measured test records."""
    return data.records_of(CHECK)


def poisoning_section(data: ReportData, names: Sequence[str], style: PlotStyle) -> dict[str, Any] | None:
    """The section's content, or ``None`` when the poisoning check measured nothing in this run."""
    records = poisoning_records(data)
    by = {(e.candidate, e.metric): e for e in records}
    shown = [n for n in names if (n, FOUND) in by or (n, "attack_success_rate") in by]
    skipped = data.skip_reasons(CHECK)
    if not shown and not skipped:
        return None
    truth = next((by[n, FOUND].details["truth"] for n in shown if (n, FOUND) in by and "truth" in by[n, FOUND].details), None)
    asr = next((by[n, "attack_success_rate"].details for n in shown if (n, "attack_success_rate") in by), None)
    return {
        "candidates": [_candidate(by, n, n == data.chosen, style) for n in shown],
        "skipped": skipped,
        "truth": truth,
        "trigger": asr["trigger"] if asr else (truth or {}).get("trigger"),
        "target": asr["target"] if asr else (truth or {}).get("target"),
        "split": records[0].split if records else "test",
    }


def _candidate(by: dict[tuple[str, str], Evidence], name: str, chosen: bool, style: PlotStyle) -> dict[str, Any]:
    found, asr = by.get((name, FOUND)), by.get((name, "attack_success_rate"))
    d = found.details if found else {}
    figures = []
    if found is not None:
        for figure in ("poison_fractions", "poison_previews"):
            drawn = render(figure, [found], style)
            if drawn.src or figure == "poison_fractions":  # no previews to draw (tables, texts, nothing flagged): no empty box
                figures.append(replace(drawn, title=f"{drawn.title}: {name}"))
    return {
        "name": name, "chosen": chosen,
        "attack_success": _cell(asr), "attack_n": asr.details.get("n") if asr else None,
        "found": _cell(found), "flagged": len(d.get("suspected", [])), "n": d.get("n"),
        "against_truth": {m.removeprefix("poison_").replace("_", " "): _cell(by.get((name, m))) for m in AGAINST_TRUTH},
        "counts": next((by[name, m].details.get("counts") for m in AGAINST_TRUTH if (name, m) in by), None),
        "classes": [_class_row(c) for c in d.get("classes", [])],
        "poisoned_classes": [str(c["class"]) for c in d.get("classes", []) if c.get("poisoned")],
        "texts": [p for p in d.get("previews", []) if "text" in p],
        "figures": figures,
    }


def _class_row(c: dict[str, Any]) -> dict[str, Any]:
    return {"class": c["class"], "n": c["n"], "flagged": c["flagged"], "estimated": f"{c['estimated_fraction']:.3f}",
            "true": f"{c['true_fraction']:.3f}" if "true_fraction" in c else "–", "silhouette": f"{c['silhouette']:.2f}",
            "spread": f"{c['spread_ratio']:.2f}", "poisoned": c["poisoned"], "reason": c["reason"]}


def _cell(e: Evidence | None) -> dict[str, Any]:
    """A table cell as the page's ``cell`` macro reads it (no gate mark: gates have their own table)."""
    if e is None:
        return {"value": "–", "interval": "", "mark": None}
    value, _, rest = e.interval_text().partition(" [")
    return {"value": value, "interval": f"[{rest}" if rest else "", "mark": None}


def model_card_lines(data: ReportData, chosen: str) -> list[str]:
    """The model card's poisoning lines for the chosen model (markdown), empty when the check did not run on it."""
    by = {e.metric: e for e in poisoning_records(data) if e.candidate == chosen}
    if not by:
        return []
    lines = []
    asr = by.get("attack_success_rate")
    if asr is not None:
        d = asr.details
        verdict = "**the backdoor works**" if asr.low is not None and asr.low > 0.5 else "the backdoor was not learnt reliably"
        lines.append(f"- Backdoor (simulated BadNets, {d.get('trigger', 'a trigger')}, target '{d.get('target', '?')}'): "
                     f"attack success rate {asr.interval_text()} on {d.get('n', '?')} triggered test inputs: {verdict}.")
    found = by.get(FOUND)
    if found is not None:
        flagged = [c for c in found.details.get("classes", []) if c.get("poisoned")]
        if flagged:
            where = ", ".join(f"class '{c['class']}' ({c['flagged']} of {c['n']})" for c in flagged)
            lines.append(f"- **Suspected poisoned training data:** {where}; {found.interval_text()} of all training examples. "
                         "Inspect and remove them, then retrain.")
        else:
            lines.append(f"- No class of the training data looks poisoned in this model's features (flagged {found.interval_text()}).")
    if "poison_recall" in by:
        lines.append(f"- Against the planted truth: recall {by['poison_recall'].interval_text()}"
                     + (f", precision {by['poison_precision'].interval_text()}" if "poison_precision" in by else "")
                     + (f", false-positive rate {by['poison_false_positive_rate'].interval_text()}" if "poison_false_positive_rate" in by else "")
                     + ".")
    return lines
