"""The label-efficiency figure: accuracy against labels per class, one line per recipe family."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..evidence import Evidence
from .label_efficiency import full_count, label_points
from .plots import PALETTE, TITLES, Rendered, draw

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TITLES["label_efficiency"] = (
    "Label efficiency",
    "Test accuracy against the labelled examples per class each candidate was trained with, one line per recipe. "
    "A point repeated over several labelled draws is their mean with the 95% t-interval over draws (small dots: each draw); "
    "a single draw shows its Clopper-Pearson exact 95% interval. 'all' is the full training split.",
)


def render_label_efficiency(candidates: Sequence[Mapping[str, Any]], headline: Mapping[str, Mapping[str, Evidence]], task: Mapping[str, Any]) -> Rendered:
    return draw("label_efficiency", lambda: label_efficiency(candidates, headline, task))


def label_efficiency(candidates: Sequence[Mapping[str, Any]], headline: Mapping[str, Mapping[str, Evidence]], task: Mapping[str, Any]) -> Figure | None:
    points = label_points(candidates, headline, task)
    if not points:
        return None
    from matplotlib.figure import Figure

    full = full_count(task)
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    families = list(dict.fromkeys(p.family for p in points))
    for i, family in enumerate(families):
        line = [p for p in points if p.family == family]
        color = PALETTE[i % len(PALETTE)]
        means = [p.mean for p in line]
        bounds = [p.interval for p in line]
        err = [[m - (lo if lo is not None else m) for m, (lo, _) in zip(means, bounds)],
               [(hi if hi is not None else m) - m for m, (_, hi) in zip(means, bounds)]]
        ax.errorbar([p.k for p in line], means, yerr=err, marker="o", ms=4, capsize=2, lw=1.4, color=color, label=family)
        for p in line:
            if len(p.by_draw) > 1:  # each draw, jittered sideways a little so they stay visible
                ax.scatter([p.k * 2 ** (0.04 * (i - (len(families) - 1) / 2))] * len(p.values), p.values, s=7, color=color, alpha=0.45, lw=0)
    ax.set_xscale("log", base=2)
    ticks = sorted({p.k for p in points})
    ax.set_xticks(ticks, [("all" if k == full else str(k)) for k in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower right")
    return fig
