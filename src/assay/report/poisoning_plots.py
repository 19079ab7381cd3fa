"""Figures for the poisoning check: the estimated poisoned share per class, and the suspected examples themselves.

Same contract as ``plots.py``. Both read one candidate's
``suspected_poison_fraction`` record (``details["classes"]`` and
``details["previews"]``); the Poisoning section (``poisoning_section.py``)
draws them per candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..evidence import Evidence
from .plots import PALETTE, PlotStyle, register_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TRUE, CLEAN = "#009E73", "#D55E00"  # a flagged example truly poisoned / clean (Okabe & Ito)
COLUMNS = 8  # previews per row


@register_figure(
    "poison_fractions",
    "Estimated poisoned share per class",
    "The share of each class's training examples the check flags (bars; a class is flagged only when its features split into "
    "two separated groups, one far more spread: examples of several kinds behind one label). Where the task was poisoned by "
    "the study itself, the black tick is the true share.",
)
def poison_fractions(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    e = records[0]
    classes = e.details.get("classes") or []
    if not classes:
        return None
    style = style or PlotStyle()
    names = [str(c["class"]) for c in classes]
    estimated = np.array([c["estimated_fraction"] for c in classes])
    fig = Figure(figsize=(min(8.6, 1.2 + 0.45 * len(names)), 2.6))
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, estimated, color=style.color(e.candidate), width=0.7, label="flagged")
    if all("true_fraction" in c for c in classes):
        truth = np.array([c["true_fraction"] for c in classes])
        ax.scatter(x, truth, marker="_", s=260, color="black", linewidths=2, label="truly poisoned", zorder=3)
    ax.set_xticks(x, names, rotation=0 if len(names) <= 12 else 90)
    ax.set_ylim(0, max(0.05, float(np.max(estimated)) * 1.15, *(c.get("true_fraction", 0) * 1.15 for c in classes)))
    ax.set_ylabel("share of the class")
    ax.set_xlabel("class (by training label)")
    ax.set_title(e.candidate + ("  (chosen)" if e.candidate == style.chosen else ""), loc="left", color=style.color(e.candidate),
                 fontweight="bold")
    ax.legend(loc="upper right")
    return fig


@register_figure(
    "poison_previews",
    "The most suspicious training examples",
    "The flagged examples of each class called poisoned, most suspicious first, with their training label; a green frame "
    "marks one that was truly poisoned, an orange one a clean example flagged (when the study poisoned the task itself).",
)
def poison_previews(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    previews = [p for p in records[0].details.get("previews") or [] if "image" in p or "signal" in p]
    if not previews:
        return None
    cols = min(COLUMNS, len(previews))
    rows = -(-len(previews) // cols)
    image = "image" in previews[0]
    fig = Figure(figsize=(1.05 * cols + 0.2, (1.25 if image else 0.9) * rows + 0.2))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, p in zip(axes.ravel(), previews):
        if image:
            x = np.asarray(p["image"], dtype=float)  # (C, H, W)
            shown = x[0] if x.shape[0] == 1 else np.clip(np.moveaxis(x, 0, -1), 0, 1)
            ax.imshow(shown, cmap="gray" if x.shape[0] == 1 else None, interpolation="nearest")
        else:
            ax.plot(np.asarray(p["signal"], dtype=float), color=PALETTE[0], lw=0.9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        edge = {True: TRUE, False: CLEAN}.get(p.get("poisoned"), "#8c959f")
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color(edge)
            spine.set_linewidth(2.2 if "poisoned" in p else 0.8)
        ax.set_title(f"#{p['index']} '{p['class']}'", fontsize=7.5)
    for ax in axes.ravel()[len(previews):]:
        ax.set_visible(False)
    fig.subplots_adjust(wspace=0.08, hspace=0.45)
    return fig
