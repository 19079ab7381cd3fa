"""Figures for the explain check: deletion/insertion curves and where each model looks.

Same contract as ``plots.py``. All read the explain check's
``faithfulness_gain`` records: ``explain_curves`` every candidate's at once
(one row each); ``attribution_maps`` (images, signals) and
``column_importance`` (tables) one candidate's ``details["shortcuts"]``, drawn
per candidate by the Explanations section (``explain_section.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..evidence import Evidence
from .plots import PALETTE, PlotStyle, register_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RANDOM = "#8c959f"
MAX_CLASSES = 10  # per-class panels beyond this get too small to read


def _method_colors(records: list[Evidence]) -> dict[str, str]:
    """The same colour for a method in every panel."""
    methods = list(dict.fromkeys(m for e in records for m in e.details.get("methods", {})))
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


@register_figure(
    "explain_curves",
    "Deletion and insertion curves",
    "The predicted class's probability as the most-attributed features are removed (deletion: lower is better) "
    "or inserted into the baseline (insertion: higher is better), averaged over the explained examples; one row per "
    "candidate, one colour per method (thicker: the most faithful), and the grey dashed line is a random attribution on the same examples "
    "(Petsiuk et al. 2018). A method whose lines sit on the grey one ranks features no better than chance.",
)
def explain_curves(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    shown = [e for e in records if e.details.get("methods")]
    if not shown:
        return None
    colors = _method_colors(shown)
    fig = Figure(figsize=(8.6, 0.8 + 2.3 * len(shown)))
    axes = fig.subplots(len(shown), 2, squeeze=False, sharey=True)
    handles: dict[str, object] = {}
    for row, e in zip(axes, shown):
        best = e.details.get("best_method")
        for ax, kind in zip(row, ("deletion", "insertion")):
            curve = e.details.get("random", {}).get(kind, {}).get("curve")
            if curve:
                (handles["random attribution"],) = ax.plot(np.linspace(0, 1, len(curve)), curve, color=RANDOM, lw=1.4, ls=(0, (4, 3)))
            for method, m in e.details["methods"].items():
                curve = m.get("curve", {}).get(kind)
                if curve:
                    (line,) = ax.plot(np.linspace(0, 1, len(curve)), curve, color=colors[method], lw=2.2 if method == best else 1.1)
                    handles.setdefault(method, line)
            ax.set_ylim(bottom=0)
            ax.set_title(f"{e.candidate}: {kind}" + ("  (chosen)" if e.candidate == style.chosen else ""), loc="left",
                         color=style.color(e.candidate), fontweight="bold")
        row[0].set_ylabel("p(predicted class)")
    axes[-1][0].set_xlabel("share of features removed")
    axes[-1][1].set_xlabel("share of features inserted")
    # One legend for every panel, above them: a method has the same colour in each row, and no legend hides a curve.
    fig.legend(list(handles.values()), list(handles), loc="upper left", ncol=min(4, len(handles)), frameon=False,
               bbox_to_anchor=(0.0, 1.0))
    fig.subplots_adjust(top=1 - (0.25 + 0.2 * -(-len(handles) // 4)) / (0.8 + 2.3 * len(shown)), hspace=0.5, wspace=0.08)
    return fig


@register_figure(
    "attribution_maps",
    "Where it looks",
    "Mean |attribution| of the most faithful method over the explained examples (first panel, brighter is more), "
    "then each class's most attributed positions; the check keeps only each class's top positions, so the rest of "
    "a class panel is left grey. A bright spot away from the object is a shortcut to look into.",
)
def attribution_maps(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    """One candidate's mean |attribution| map, then its classes' most attributed positions."""
    from matplotlib.figure import Figure

    e = records[0]
    found = e.details.get("shortcuts", {})
    overall = np.asarray(found.get("mean_abs") or [], dtype=float)
    if not overall.size:
        return None
    shape = tuple(found.get("map_shape") or (overall.size,))  # (H, W) for images; a strip of steps for signals
    image = len(shape) == 2
    classes = list(found.get("per_class", {}).items())[:MAX_CLASSES]
    panels = 1 + len(classes)
    cols = min(6 if image else 2, panels)
    rows = -(-panels // cols)
    fig = Figure(figsize=(1.55 * cols + 0.4, 1.75 * rows + 0.3) if image else (8.6, 0.75 * rows + 0.3))
    axes = fig.subplots(rows, cols, squeeze=False)

    def show(ax, values: np.ndarray, title: str) -> None:
        grid = values.reshape(shape) if image else values.reshape(1, -1)
        finite = np.isfinite(grid)
        ax.imshow(np.ma.masked_invalid(grid), cmap="magma", vmin=0, vmax=np.nanmax(grid) if finite.any() and np.nanmax(grid) > 0 else 1,
                  aspect="equal" if image else "auto", interpolation="nearest")
        ax.set_facecolor("#eaeef2")
        ax.grid(False)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8.5)

    show(axes[0, 0], overall, "all classes")
    for ax, (name, top) in zip(axes.ravel()[1:], classes):
        sparse = np.full(overall.size, np.nan)
        for r in top:
            sparse[r["index"]] = r["importance"]
        show(ax, sparse, f"class {name}")
    for ax in axes.ravel()[panels:]:
        ax.set_visible(False)
    fig.subplots_adjust(wspace=0.1, hspace=0.35)
    return fig


@register_figure(
    "column_importance",
    "Column importance",
    "Mean |attribution| of each of the most attributed columns over the explained examples, from the most faithful "
    "method; one-hot and scaled columns are summed back to the columns of your table. A column that should not "
    "matter near the top is a shortcut to look into.",
)
def column_importance(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    """One candidate's most attributed columns as horizontal bars."""
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    e = records[0]
    top = e.details.get("shortcuts", {}).get("top") or []
    if not top:
        return None
    names = [str(r["feature"]) for r in top][::-1]
    fig = Figure(figsize=(5.2, 0.7 + 0.26 * len(top)))
    ax = fig.add_subplot()
    ax.barh(range(len(top)), [r["importance"] for r in top][::-1], color=style.color(e.candidate), height=0.65)
    ax.set_yticks(range(len(top)), [n if len(n) <= 28 else n[:27] + "…" for n in names])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("mean |attribution|")
    ax.set_title(f"{e.candidate}: {e.details.get('best_method', '')}", loc="left")
    return fig
