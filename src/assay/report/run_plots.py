"""Figures drawn from the run as a whole rather than from one metric's evidence.

Training curves come from each candidate's recorded history; the Pareto plot
comes from the decision and the headline evidence. Both go through the same
``plots.draw`` as the evidence figures, so they share style and encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..evidence import Evidence
from ..select import Decision
from .data import objectives, ordered
from .plots import TITLES, PlotStyle, Rendered, draw

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TITLES["training_curves"] = (
    "Training curves",
    "Training loss (solid) and validation loss (dashed, log scale) per epoch, and validation accuracy. "
    "The dot marks the epoch whose weights were kept (lowest validation loss).",
)
TITLES["pareto"] = (
    "Pareto front",
    "Each candidate on the policy's first two objectives with 95% intervals. Filled: on the front (no other "
    "candidate that passes the gates is at least as good on both and better on one); hollow: dominated; grey: "
    "fails a gate; ringed: chosen.",
)


def render_training_curves(candidates: Sequence[Mapping[str, Any]], style: PlotStyle) -> Rendered:
    """The training-curves figure for every candidate that recorded a history."""
    return draw("training_curves", lambda: training_curves(candidates, style))


def render_pareto(decision: Decision | None, headline: Mapping[str, Mapping[str, Evidence]], style: PlotStyle) -> Rendered:
    """The Pareto plot on the decision's first two objectives."""
    return draw("pareto", lambda: pareto(decision, headline, style))


def training_curves(candidates: Sequence[Mapping[str, Any]], style: PlotStyle) -> Figure | None:
    """Loss and validation accuracy per epoch; ``None`` when nothing was trained here."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    trained = [c for c in candidates if (c.get("training") or {}).get("history")]
    if not trained:
        return None
    fig = Figure(figsize=(10.2, 3.3))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for c in trained:
        history, color = c["training"]["history"], style.color(c["name"])
        epochs = [r["epoch"] for r in history]
        loss_ax.plot(epochs, [r.get("loss") for r in history], color=color, lw=1.5)
        val = [(r["epoch"], r.get("val_loss"), r.get("val_accuracy")) for r in history if r.get("val_loss") is not None]
        loss_ax.plot([v[0] for v in val], [v[1] for v in val], color=color, lw=1.5, ls=(0, (4, 2)))
        acc_ax.plot([v[0] for v in val], [v[2] for v in val], color=color, lw=1.5, label=c["name"])
        best = next((v for v in val if v[0] == c["training"].get("best_epoch")), None)
        if best is not None:
            loss_ax.plot(best[0], best[1], "o", color=color, ms=5, mec="white", mew=1)
            acc_ax.plot(best[0], best[2], "o", color=color, ms=5, mec="white", mew=1)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="loss")
    loss_ax.legend(handles=[Line2D([], [], color="#57606a", lw=1.5, label="train"),
                            Line2D([], [], color="#57606a", lw=1.5, ls=(0, (4, 2)), label="validation"),
                            Line2D([], [], color="#57606a", marker="o", ls="", label="kept epoch")], loc="upper right")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy")
    acc_ax.legend(loc="lower right")
    return fig


def pareto(decision: Decision | None, headline: Mapping[str, Mapping[str, Evidence]], style: PlotStyle) -> Figure | None:
    """First objective (vertical) against the second (horizontal); ``None`` with fewer than two."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    goals = objectives(decision)
    if decision is None or len(goals) < 2:
        return None
    (y_metric, y_up), (x_metric, x_up) = goals[:2]
    points = {n: (row[x_metric], row[y_metric]) for n, row in headline.items() if x_metric in row and y_metric in row}
    if not points:
        return None
    fig = Figure(figsize=(5.2, 4.0))
    ax = fig.add_subplot()
    front = sorted((n for n in decision.pareto if n in points), key=lambda n: points[n][0].value)
    if len(front) > 1:
        ax.plot([points[n][0].value for n in front], [points[n][1].value for n in front], color="#57606a", lw=1, ls=(0, (4, 3)), zorder=1)
    xs = [p[0].value for p in points.values()]
    for name, (ex, ey) in points.items():
        color = style.color(name) if name in decision.passed else "#afb8c1"
        ax.errorbar(ex.value, ey.value, xerr=_err(ex), yerr=_err(ey), fmt="o", ms=7, color=color, capsize=2, elinewidth=1,
                    mfc=color if name in front else "white", mew=1.5, zorder=3)
        if name == decision.chosen:
            ax.scatter([ex.value], [ey.value], s=330, facecolors="none", edgecolors="#24292f", linewidths=1.3, zorder=4)
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.25, y=0.2)
    ax.autoscale_view()  # fix the limits now, so label positions measured below stay true
    _label(fig, ax, {n: (ex.value, ey.value) for n, (ex, ey) in points.items()}, decision)
    ax.set_xlabel(f"{x_metric}  ({'higher' if x_up else 'lower'} is better)")
    ax.set_ylabel(f"{y_metric}  ({'higher' if y_up else 'lower'} is better)")
    marker = {"marker": "o", "ls": "", "ms": 6, "mew": 1.5}
    ax.legend(handles=[Line2D([], [], color="#57606a", mfc="#57606a", label="on the front", **marker),
                       Line2D([], [], color="#57606a", mfc="white", label="dominated", **marker),
                       Line2D([], [], color="#afb8c1", mfc="#afb8c1", label="fails a gate", **marker)],
              loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=3, handletextpad=0.3)
    return fig


def _label(fig: Figure, ax: Any, where: Mapping[str, tuple[float, float]], decision: Decision) -> None:
    """Name each point, trying a few spots around it so no two labels overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    spots = [((9, 5), "left"), ((9, -13), "left"), ((-9, 5), "right"), ((-9, -13), "right"), ((9, 17), "left"), ((9, -25), "left")]
    taken = []
    for name in ordered(list(where), decision.chosen):  # the chosen one gets the first pick of spots
        xy, chosen = where[name], name == decision.chosen
        for offset, align in spots:
            text = ax.annotate(name + ("  (chosen)" if chosen else ""), xy, xytext=offset, textcoords="offset points", ha=align,
                               fontsize=8.5, color="#24292f" if name in decision.passed else "#8c959f",
                               fontweight="bold" if chosen else "normal")
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in taken):
                break
            text.remove()
        else:  # every spot is taken: keep the first, overlapping, rather than lose the name
            text = ax.annotate(name, xy, xytext=spots[0][0], textcoords="offset points", fontsize=8.5)
            box = text.get_window_extent(renderer)
        taken.append(box)


def _err(e: Evidence) -> list[list[float]] | None:
    if e.low is None or e.high is None:
        return None
    return [[max(0.0, e.value - e.low)], [max(0.0, e.high - e.value)]]
