"""Label efficiency: accuracy against labelled examples per class, per recipe.

Candidates trained with ``labels_per_class = k`` record k (and, when the
recipe was repeated with ``draws = n``, which labelled subset: ``label_draw``)
in their provenance config. Candidates on all labels sit at the task's full
per-class count.

With one draw a point's interval is its accuracy's Clopper-Pearson exact interval. With
several it is the 95% t-interval of the mean over draws: with few labels,
which examples were labelled moves accuracy far more than test-set sampling
does. Every recipe gets the same labelled examples in draw d, so recipes are
compared draw by draw (a paired t-interval of each pair's difference).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..evidence import Evidence
from ..stats import t_interval
from .data import fmt_number

_LABEL_KEYS = ("labels_per_class", "label_draw")


@dataclass
class Point:
    """One recipe family at one label count: accuracy by draw (0 = the only draw)."""

    family: str
    k: int
    by_draw: dict[int, Evidence] = field(default_factory=dict)

    @property
    def values(self) -> list[float]:
        return [e.value for _, e in sorted(self.by_draw.items())]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def interval(self) -> tuple[float | None, float | None]:
        if len(self.by_draw) == 1:
            only = next(iter(self.by_draw.values()))
            return only.low, only.high
        return t_interval(self.values)


def _family(c: Mapping[str, Any]) -> str:
    config, arch = c.get("config") or {}, c.get("arch") or {}
    detail = config.get("strategy") or arch.get("name") or ""
    return f"{c.get('recipe', '?')} ({detail})" if detail else str(c.get("recipe", "?"))


def full_count(task: Mapping[str, Any]) -> int:
    """Labelled train examples per class of the full task (its smallest class): where 'all' sits."""
    counts = [c for c in ((task.get("class_counts") or {}).get("train") or []) if c]
    return max(1, min(counts)) if counts else 1


def label_points(candidates: Sequence[Mapping[str, Any]], headline: Mapping[str, Mapping[str, Evidence]], task: Mapping[str, Any]) -> list[Point]:
    """Accuracy points of the candidates a recipe made from labels (children such as int8 copies are left out).

    A family is a recipe kind with its strategy or architecture. Settings
    may change with the label count (say, more epochs for more labels) and
    the family stays one line; only when two configurations of a family meet
    at the same label count are they split, named by the settings that
    differ, so they are never averaged together.
    """
    if not any((c.get("config") or {}).get("labels_per_class") for c in candidates):
        return []
    full = full_count(task)
    points: dict[tuple[str, str, int], Point] = {}
    settings: dict[str, dict[str, Any]] = {}  # configuration key -> its settings, to name families apart
    for c in candidates:
        e = headline.get(c["name"], {}).get("accuracy")
        if e is None or c.get("parent"):
            continue
        config = c.get("config") or {}
        k = config.get("labels_per_class") or full
        setting = {key: v for key, v in config.items() if key not in _LABEL_KEYS} or dict(c.get("arch") or {})
        options = json.dumps([setting, c.get("arch")], sort_keys=True, default=str)
        settings[options] = setting
        points.setdefault((_family(c), options, k), Point(_family(c), k)).by_draw[int(config.get("label_draw", 0))] = e
    variants: dict[str, list[str]] = {}
    for family, options, _ in points:
        if options not in variants.setdefault(family, []):
            variants[family].append(options)
    clash = {family for family, _, k in points if sum(1 for f, _, kk in points if f == family and kk == k) > 1}
    merged: dict[tuple[str, int], Point] = {}
    for (family, options, k), point in points.items():
        if family in clash:
            others = [settings[o] for o in variants[family]]
            differ = sorted(key for key in set().union(*others) if len({json.dumps(o.get(key), default=str) for o in others}) > 1)
            point.family = f"{family} " + ", ".join(f"{key}={json.dumps(settings[options].get(key), default=str)}" for key in differ)
        merged[(point.family, k)] = point
    return sorted(merged.values(), key=lambda p: (p.family, p.k))


def paired_gaps(points: Sequence[Point]) -> list[dict[str, Any]]:
    """At each label count with repeated draws: every pair of families, paired by draw (the better mean first)."""
    out = []
    for k in sorted({p.k for p in points}):
        here = sorted((p for p in points if p.k == k and len(p.by_draw) > 1), key=lambda p: -p.mean)
        for i, leader in enumerate(here):
            for other in here[i + 1 :]:
                common = sorted(set(leader.by_draw) & set(other.by_draw))
                if len(common) < 2:
                    continue
                diffs = [other.by_draw[d].value - leader.by_draw[d].value for d in common]
                low, high = t_interval(diffs)
                out.append({"k": k, "leader": leader.family, "family": other.family, "gap": sum(diffs) / len(diffs),
                            "low": low, "high": high, "draws": len(common), "wins": sum(d > 0 for d in diffs),
                            "significant": high < 0 or low > 0})
    return out


def label_efficiency_section(candidates: Sequence[Mapping[str, Any]], headline: Mapping[str, Mapping[str, Evidence]], task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The report's label-efficiency table (family x label count) and paired comparisons, or None."""
    points = label_points(candidates, headline, task)
    if not points:
        return None
    full = full_count(task)
    ks = sorted({p.k for p in points})
    families = list(dict.fromkeys(p.family for p in points))
    index = {(p.family, p.k): p for p in points}
    rows = []
    for family in families:
        cells = []
        for k in ks:
            p = index.get((family, k))
            if p is None:
                cells.append({"value": "–", "interval": "", "draws": ""})
                continue
            low, high = p.interval
            interval = f"[{fmt_number(low)}, {fmt_number(high)}]" if low is not None and high is not None else ""
            draws = len(p.by_draw)
            cells.append({"value": fmt_number(p.mean), "interval": interval, "draws": f"mean of {draws} draws" if draws > 1 else ""})
        rows.append({"family": family, "cells": cells})
    gaps = [{**g, "label": "all" if g["k"] == full else str(g["k"]),
             "text": f"{fmt_number(g['gap'])} [{fmt_number(g['low'])}, {fmt_number(g['high'])}]"} for g in paired_gaps(points)]
    return {"columns": ["all" if k == full else str(k) for k in ks], "rows": rows, "gaps": gaps}
