"""The report's Explanations section: which explanation of each model can be believed.

Built from the explain check's records on the test split: per candidate and
method, the deletion and insertion AUCs, the paired gain over a random
attribution with its interval and the verdict, the model-randomisation
sanity check; the curves; where each model looks (each class's full mean
map for images and signals, bars for table columns, highlighted tokens for
text); the most confident right and wrong predictions with their
attributions; and explanation drift against the parent. Data a run made
before the check recorded it (full class maps, examples) is simply not drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..evidence import Evidence
from . import explain_plots  # registers its figures; draws single examples
from .data import ReportData
from .plots import PlotStyle, Rendered, render

CHECK = "explain"


def explain_records(data: ReportData) -> list[Evidence]:
    """The explain check's measured test records on the clean inputs."""
    return data.records_of(CHECK, "clean")


def faithful_methods(gain: Evidence, sanity: Evidence | None) -> tuple[list[str], dict[str, str]]:
    """``(methods that beat random and pass the sanity check, {method: why not} for the rest)``."""
    failing = set(sanity.details.get("failing", [])) if sanity else set()
    good, bad = [], {}
    for method, row in gain.details.get("methods", {}).items():
        if row["verdict"] != "better than random":
            bad[method] = f"{row['verdict']} (gain {_ci(row['gain'], row['low'], row['high'])})"
        elif method in failing:
            bad[method] = "beats random but fails the model-randomisation sanity check"
        else:
            good.append(method)
    return good, bad


def explain_section(data: ReportData, names: Sequence[str], style: PlotStyle) -> dict[str, Any] | None:
    """The section's content, or ``None`` when the explain check measured nothing in this run."""
    records = explain_records(data)
    by = {(e.candidate, e.metric): e for e in records}
    shown = [n for n in names if (n, "faithfulness_gain") in by]
    skipped = data.skip_reasons(CHECK)
    if not shown and not skipped:
        return None
    modality = data.task.get("modality", "")
    candidates = [_candidate(by, n, n == data.chosen, modality, style) for n in shown]
    gains = [by[n, "faithfulness_gain"] for n in shown]
    curves = render("explain_curves", gains, style) if gains else None
    return {"candidates": candidates, "curves": [curves] if curves else [], "skipped": skipped, "split": records[0].split if records else "test",
            "modality": modality}


def _candidate(by: dict[tuple[str, str], Evidence], name: str, chosen: bool, modality: str, style: PlotStyle) -> dict[str, Any]:
    gain = by[name, "faithfulness_gain"]
    sanity, drift, ig = by.get((name, "randomisation_correlation")), by.get((name, "explanation_agreement")), by.get((name, "ig_completeness_error"))
    d = gain.details
    cascade = sanity.details.get("methods", {}) if sanity else {}
    rows = []
    for method, row in d.get("methods", {}).items():
        rs = cascade.get(method)
        rows.append({
            "method": method, "best": method == d.get("best_method"),
            "deletion": _cell(row["deletion"]), "insertion": _cell(row["insertion"]),
            "gain": {"value": f"{row['gain']:+.3f}", "interval": f"[{row['low']:+.3f}, {row['high']:+.3f}]"},
            "verdict": row["verdict"], "kind": {"better than random": "pass"}.get(row["verdict"], "fail"),
            "sanity": {"value": f"{rs['value']:.3f}", "interval": f"[{rs['interval'][0]:.3f}, {rs['interval'][1]:.3f}]",
                       "passes": rs["passes"]} if rs else None,
        })
    rand = d.get("random", {})
    random_row = {k: _cell(rand[k]) for k in ("deletion", "insertion") if k in rand}
    good, bad = faithful_methods(gain, sanity)
    figures = _where_it_looks(gain, modality, style)
    return {
        "name": name, "chosen": chosen, "rows": rows, "random": random_row, "n_examples": d.get("n_examples"),
        "best": d.get("best_method"), "faithful": good, "unfaithful": bad,
        "threshold": sanity.details.get("threshold") if sanity else None,
        "not_applicable": [f"{m}: {why}" for m, why in (d.get("not_applicable") or {}).items()],
        "notes": [str(n) for n in d.get("notes") or []],
        "agreement": [f"{a['methods'][0]} vs {a['methods'][1]}: Spearman {a['spearman']:.2f}, top-k overlap {a['top_k_overlap']:.2f}"
                      for a in d.get("agreement") or [] if d.get("best_method") in a["methods"]],  # the best method against each other
        "drift": _drift(drift), "completeness": ig.interval_text() if ig else None,
        "figures": figures, "tokens": _tokens(gain) if modality == "text" else None,
    }


def _where_it_looks(gain: Evidence, modality: str, style: PlotStyle) -> list[Rendered]:
    if modality == "text":
        return []  # tokens, and the examples' tokens, are shown as highlighted text, not a picture
    if modality == "tabular":
        names = ["column_importance"]
    else:  # full per-class maps where the check kept them; a run made before that has only each class's top positions
        names = ["class_attribution_maps" if (gain.details.get("shortcuts") or {}).get("class_mean_abs") else "attribution_maps"]
    if gain.details.get("examples"):
        names.append("explain_examples")
    drawn = [render(name, [gain], style) for name in names]
    return [replace(d, title=f"{d.title}: {gain.candidate} ({gain.details.get('best_method', '')})") for d in drawn]


def _tokens(gain: Evidence) -> list[dict[str, Any]]:
    """Per class (and overall), the top tokens with a highlight strength in [0, 1] (share of the largest importance shown),
    then each explained example's text with its tokens highlighted by |attribution| (the sign in the hover title)."""
    found = gain.details.get("shortcuts", {})
    groups = [("all classes", found.get("top") or []), *((f"class {c}", rows) for c, rows in (found.get("per_class") or {}).items())]
    peak = max((r["importance"] for _, rows in groups for r in rows), default=0.0) or 1.0
    out = [{"label": label, "tokens": [{"text": str(r["feature"]), "alpha": round(0.12 + 0.78 * r["importance"] / peak, 3),
                                        "title": f"mean |attribution| {r['importance']:.3g}" + (f" over {r['count']} occurrences" if "count" in r else "")}
                                       for r in rows]}
           for label, rows in groups if rows]
    for example in gain.details.get("examples") or []:
        if explain_plots.example_kind(example) == "text":
            out.append({"label": explain_plots.example_title(example).replace("\n", ": "),
                        "tokens": explain_plots.token_highlights(example["input"]["tokens"], example["attribution"])})
    return out


def _drift(e: Evidence | None) -> dict[str, Any] | None:
    if e is None:
        return None
    d = e.details
    return {"against": d.get("against", e.reference or ""), "method": d.get("method", ""), "value": e.interval_text(),
            "overlap": f"{d['top_k_overlap']:.2f}" if "top_k_overlap" in d else "–", "top_k": d.get("top_k", ""),
            "warnings": [str(w) for w in d.get("warnings") or []]}


def _cell(row: dict[str, Any]) -> dict[str, str]:
    lo, hi = row["interval"]
    return {"value": f"{row['value']:.3f}", "interval": f"[{lo:.3f}, {hi:.3f}]"}


def _ci(value: float, low: float, high: float) -> str:
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"
