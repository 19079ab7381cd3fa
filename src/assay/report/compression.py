"""The report's compression section: every variant against its parent.

For each derived candidate (quantized, pruned, distilled, exported…) it
lists the change of every metric the two share, with the paired interval
where the ``comparison`` check measured one, the classes and groups hit
disproportionately, and the examples the variant forgot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..checks.base import known_metrics
from ..checks.metrics import Metric
from ..evidence import Evidence
from .data import ReportData, arrow, fmt_number
from .plots import PlotStyle, render


def _pairs() -> dict[str, Metric]:
    """metric -> the declared paired change of it against the parent (``accuracy`` -> ``accuracy_drop``)."""
    return {m.paired: m for m in known_metrics().values() if m.paired}


def compression_section(data: ReportData, names: Sequence[str], style: PlotStyle) -> dict[str, Any] | None:
    """The section's content, or ``None`` when no candidate has a parent in this run."""
    parents = {n: data.candidate(n).get("parent") for n in names}
    variants = [n for n in names if parents[n] in names]
    if not variants:
        return None
    headline, pairs = data.headline(), _pairs()
    changes = {m.name for m in pairs.values()}  # shown as the interval of the metric they are the change of, not as rows
    metrics = [m for m in dict.fromkeys(m for n in variants for m in headline.get(n, {}))
               if m not in changes and any(m in headline.get(parents[n], {}) for n in variants)]
    rows = [{"metric": m, "arrow": _arrow(headline, variants, m),
             "cells": [_change(headline, n, parents[n], m, _decimals(headline, variants, parents, m), pairs.get(m)) for n in variants]}
            for m in metrics]
    drops = [e for e in data.measured() if e.check == "comparison" and e.metric == "accuracy_drop" and e.candidate in variants]
    groups = [e for e in data.measured() if e.check == "comparison" and e.metric == "worst_group_accuracy_drop" and e.candidate in variants]
    return {
        "variants": [{"name": n, "parent": parents[n], "recipe": data.candidate(n).get("recipe", "")} for n in variants],
        "rows": rows,
        "flags": _flags(drops, groups),
        "forgotten": [_forgotten(e) for e in drops],
        "figures": [f for f in (render("class_drops", drops, style), render("forgotten_examples", drops, style)) if f.src] if drops else [],
    }


def _arrow(headline: Mapping[str, Mapping[str, Evidence]], variants: Sequence[str], metric: str) -> str:
    e = next((headline[n][metric] for n in variants if metric in headline.get(n, {})), None)
    return arrow(e.higher_is_better if e else None)


def _decimals(headline: Mapping[str, Mapping[str, Evidence]], variants: Sequence[str], parents: Mapping[str, str], metric: str) -> int:
    """Decimals for one metric's row: four significant digits of the largest value in it, the same for every cell.

    One format per row, so a change of 2.9e-05 prints as +0.000029 beside +0.000000, not as
    ``+2.903e-05`` beside ``+0``.
    """
    values = [abs(e.value) for n in variants for e in (headline.get(n, {}).get(metric), headline.get(parents[n], {}).get(metric))
              if e is not None and math.isfinite(e.value) and abs(e.value) > 1e-12]  # 4.5e-16 is a zero up to rounding
    if not values:
        return 3
    return int(min(8, max(0, 3 - math.floor(math.log10(max(values))))))


def _signed(x: float, decimals: int, sign: str = "+") -> str:
    """``+0.0112``, ``-1,024``; a change that rounds to zero prints as ``+0.0000``, never ``-0.0000``."""
    x = round(x, decimals) + 0.0
    return f"{x:{sign},.{decimals}f}"


def _change(headline: Mapping[str, Mapping[str, Evidence]], name: str, parent: str, metric: str, decimals: int = 3,
            pair: Metric | None = None) -> dict[str, Any]:
    """One cell: the variant's change of ``metric`` from its parent, with ``pair``'s paired interval where it was measured."""
    ours, theirs = headline.get(name, {}).get(metric), headline.get(parent, {}).get(metric)
    if ours is None or theirs is None:
        return {"value": "–", "interval": "", "kind": "", "title": ""}
    delta = ours.value - theirs.value
    paired = headline.get(name, {}).get(pair.name) if pair else None
    interval, kind = "", ""
    if paired is not None and paired.low is not None:
        low, high = sorted((pair.sign * paired.low, pair.sign * paired.high))
        interval = f"[{_signed(low, decimals, '')}, {_signed(high, decimals, '')}]"
        kind = {"worse": "worse", "better": "better"}.get(paired.details.get("verdict"), "")
    elif abs(theirs.value) >= 1e-3 and abs(delta) <= 100 * abs(theirs.value):  # a percentage of nearly nothing says nothing
        relative = delta / abs(theirs.value)
        interval = "0%" if abs(relative) < 0.005 else f"{relative:+.0%}"
    return {"value": _signed(delta, decimals), "interval": interval, "kind": kind, "title": f"{fmt_number(theirs.value)} → {fmt_number(ours.value)}"}


def _flags(drops: Sequence[Evidence], groups: Sequence[Evidence]) -> list[str]:
    out = []
    for e, key in [*((e, "per_class") for e in drops), *((e, "per_group") for e in groups)]:
        overall = next((d.value for d in drops if d.candidate == e.candidate), e.value)
        what = "class" if key == "per_class" else f"{e.details.get('attribute', 'group')} group"
        for row in e.details.get(key, []):
            if row["flagged"]:
                times = f"{row['drop'] / overall:.1f}× the overall drop" if overall > 0 else "while overall accuracy did not drop"
                out.append(f"{e.candidate}: {what} '{row['name']}' lost {row['drop']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
                           f"of its {'recall' if key == 'per_class' else 'accuracy'}, {times}.")
    return out


def _forgotten(e: Evidence) -> dict[str, Any]:
    d = e.details
    texts = [f"“{p['text']}” — {p['label']} → {p['candidate']}" for p in d.get("forgotten_preview", []) if "text" in p]
    return {"name": e.candidate, "against": d.get("against", ""), "count": d.get("forgotten_count", 0),
            "only_candidate_right": d.get("only_candidate_right", 0), "p": d.get("mcnemar_p"), "texts": texts}
