"""The worst finding of each check, per candidate, in a few words.

The summary's second table: one cell per (candidate, check) naming where the
candidate is weakest (the class, corruption, OOD set, group or slice) rather
than an average that hides it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..evidence import Evidence

Finder = Callable[[Mapping[str, Evidence]], str]


def _performance(r: Mapping[str, Evidence]) -> str:
    e = r.get("worst_class_recall")
    return f"class {e.details.get('worst_class')}: recall {e.interval_text()}" if e else ""


def _calibration(r: Mapping[str, Evidence]) -> str:
    e, t = r.get("ece"), r.get("ece_temperature_scaled")
    if not e:
        return ""
    if not t:
        return f"ECE {e.interval_text()}"
    worse = " (worse: temperature scaling does not help here)" if t.value > e.value else ""
    return f"ECE {e.interval_text()}; {t.value:.3f} after temperature {t.details.get('temperature', 0):.2f}{worse}"


def _robustness(r: Mapping[str, Evidence]) -> str:
    e = r.get("worst_corruption_accuracy")
    return f"{e.details.get('worst_corruption', '?').replace('_', ' ')}: accuracy {e.interval_text()}" if e else ""


def _ood(r: Mapping[str, Evidence]) -> str:
    found = [r[m] for m in ("near_ood_auroc", "far_ood_auroc") if m in r]
    if not found:
        return ""
    worst = min(found, key=lambda e: e.value)
    below = " — below chance" if worst.value < 0.5 else ""
    return f"{worst.metric.split('_')[0]}-OOD AUROC {worst.interval_text()} ({worst.details.get('score', '')}){below}"


def _fairness(r: Mapping[str, Evidence]) -> str:
    e = r.get("worst_group_accuracy")
    if not e:
        return ""
    groups = e.details.get("per_group", [])
    worst = min(groups, key=lambda g: g["accuracy"] if g["accuracy"] is not None else 2, default={})
    return f"{e.details.get('attribute')}={worst.get('group')}: accuracy {e.interval_text()}"


def _slices(r: Mapping[str, Evidence]) -> str:
    e = r.get("worst_slice_error")
    if not e or not e.details.get("worst"):
        return ""
    top = e.details["worst"][0]
    return f"{top['slice']}: error {e.interval_text()}" + (" (significant)" if top.get("significant") else "")


def _comparison(r: Mapping[str, Evidence]) -> str:
    e = r.get("accuracy_drop")
    return f"vs {e.details.get('against')}: {e.details.get('verdict')} (drop {e.interval_text()})" if e else ""


def _efficiency(r: Mapping[str, Evidence]) -> str:
    e = r.get("latency_p95_ms")
    return f"p95 latency {e.interval_text()} ms" if e else ""


FINDERS: dict[str, Finder] = {
    "performance": _performance,
    "calibration": _calibration,
    "robustness": _robustness,
    "ood": _ood,
    "fairness": _fairness,
    "slices": _slices,
    "comparison": _comparison,
    "efficiency": _efficiency,
}


def worst_findings(evidence: Sequence[Evidence], names: Sequence[str]) -> dict[str, object]:
    """Columns (checks with a finder and a record) and one row of texts per candidate."""
    by: dict[tuple[str, str], dict[str, Evidence]] = {}
    for e in evidence:
        if e.split == "test":
            by.setdefault((e.candidate, e.check), {})[e.metric] = e
    checks = [c for c in FINDERS if any((n, c) in by for n in names)]
    rows = [{"name": n, "cells": [FINDERS[c](by.get((n, c), {})) or "–" for c in checks]} for n in names]
    return {"checks": checks, "rows": rows}
