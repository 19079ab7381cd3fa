"""The label-efficiency figure: accuracy against labels per class, per recipe.

Drawn when candidates were trained with ``labels_per_class`` (recorded in
their provenance config). Candidates trained on all labels sit at the right
end, at the task's full per-class count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..checks.base import Evidence
from .plots import PALETTE, TITLES, Rendered, draw

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TITLES["label_efficiency"] = (
    "Label efficiency",
    "Test accuracy (95% bootstrap interval) against the labelled examples per class each candidate was trained "
    "with, one line per recipe. 'all' is the full training split.",
)


def render_label_efficiency(candidates: Sequence[Mapping[str, Any]], headline: Mapping[str, Mapping[str, Evidence]], task: Mapping[str, Any]) -> Rendered:
    return draw("label_efficiency", lambda: label_efficiency(candidates, headline, task))


def _family(c: Mapping[str, Any]) -> str:
    config, arch = c.get("config") or {}, c.get("arch") or {}
    detail = config.get("strategy") or arch.get("name") or ""
    return f"{c.get('recipe', '?')} ({detail})" if detail else str(c.get("recipe", "?"))


def label_efficiency(candidates: Sequence[Mapping[str, Any]], headline: Mapping[str, Mapping[str, Evidence]], task: Mapping[str, Any]) -> Figure | None:
    if not any((c.get("config") or {}).get("labels_per_class") for c in candidates):
        return None
    from matplotlib.figure import Figure

    counts = (task.get("class_counts") or {}).get("train") or [0]
    full = max(1, min(c for c in counts if c) if any(counts) else 1)
    lines: dict[str, list[tuple[int, Evidence]]] = {}
    for c in candidates:
        e = headline.get(c["name"], {}).get("accuracy")
        if e is None or c.get("parent"):
            continue
        k = (c.get("config") or {}).get("labels_per_class") or full
        lines.setdefault(_family(c), []).append((k, e))
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    for i, (family, points) in enumerate(sorted(lines.items())):
        points.sort(key=lambda p: p[0])
        x = [k for k, _ in points]
        y = [e.value for _, e in points]
        err = [[e.value - (e.low if e.low is not None else e.value) for _, e in points], [(e.high if e.high is not None else e.value) - e.value for _, e in points]]
        ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=2, lw=1.4, color=PALETTE[i % len(PALETTE)], label=family)
    ax.set_xscale("log", base=2)
    ticks = sorted({k for points in lines.values() for k, _ in points})
    ax.set_xticks(ticks, [("all" if k == full else str(k)) for k in ticks])
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower right")
    return fig
