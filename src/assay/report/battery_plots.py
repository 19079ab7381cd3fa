"""Figures for the trust battery: robustness, OOD, fairness and slices.

Same contract as ``plots.py``: each function gets one metric's records across
candidates and returns a matplotlib Figure drawn from ``details``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..evidence import Evidence
from .plots import PlotStyle, _legend_above, register_figure

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.figure import Figure


def _legend_pad(n: int) -> float:
    """Title padding that clears ``_legend_above``'s legend: one row of up to three candidates, 13 points a row."""
    return 7 + 13 * -(-n // 3)


def _error_bars(values: Sequence[float], intervals: Sequence[Sequence[float | None]]) -> tuple[list[float], list[float]]:
    """Matplotlib's ``[below, above]`` error lengths from ``(low, high)`` bounds: never negative, 0 where a bound is missing.

    A bound that sits on its point up to rounding (a Wilson bound of 1.39e-17 at an error of 0) would
    otherwise give a length of -1.39e-17, which matplotlib refuses ("'xerr' must not contain negative values").
    """
    below, above = [], []
    for v, (low, high) in zip(values, intervals):
        finite = v is not None and v == v
        below.append(max(0.0, v - low) if finite and low is not None else 0.0)
        above.append(max(0.0, high - v) if finite and high is not None else 0.0)
    return below, above


@register_figure(
    "accuracy_vs_severity",
    "Accuracy under corruption",
    "Test accuracy at each severity (1 mild … 5 severe) of each corruption; the dashed line is clean accuracy. "
    "mCE and relative mCE compare the summed errors with the reference candidate's (Hendrycks & Dietterich 2019).",
)
def accuracy_vs_severity(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    kinds = list(records[0].details["accuracy"])
    cols = min(5, len(kinds))
    rows = -(-len(kinds) // cols)
    fig = Figure(figsize=(min(10.2, 2.05 * cols), 1.9 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    for ax, kind in zip(axes.ravel(), kinds):
        for e in records:
            sev = e.details["severities"]
            color = style.color(e.candidate)
            ax.plot(sev, e.details["accuracy"][kind], marker="o", ms=3, lw=1.2, color=color, label=e.candidate)
            ax.axhline(e.details["clean_accuracy"], color=color, lw=0.8, ls=(0, (3, 3)), alpha=0.7)
        ax.set_title(kind.replace("_", " "))
        ax.set_ylim(0, 1.02)
        ax.set_xticks(records[0].details["severities"])
    for ax in axes.ravel()[len(kinds):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in axes[-1]:
        ax.set_xlabel("severity")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", ncol=min(len(records), 4), frameon=False, bbox_to_anchor=(0.0, 1.0))
    fig.subplots_adjust(top=1 - 0.45 / (1.9 * rows + 0.5), hspace=0.45)
    return fig


@register_figure(
    "ood_scores",
    "Out-of-distribution detection by score",
    "AUROC of telling test inputs from each OOD set apart, for every score (1.0 perfect, 0.5 chance). "
    "The check's headline metric uses the score named in its options.",
)
def ood_scores(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    sets = list(records[0].details["table"])
    # Every score any candidate has (one without features has no embedding scores): the union, in order of first appearance.
    scores = list(dict.fromkeys(s for e in records for table in e.details["table"].values() for s in table))
    fig = Figure(figsize=(min(10.2, 1.3 + 3.0 * len(sets)), 3.1))
    axes = fig.subplots(1, len(sets), squeeze=False, sharey=True)[0]
    n = len(records)
    for ax, name in zip(axes, sets):
        for i, e in enumerate(records):
            table = e.details["table"].get(name, {})
            x = [j + (i - (n - 1) / 2) * 0.8 / n for j in range(len(scores))]
            heights = [table.get(s, {}).get("auroc", float("nan")) for s in scores]  # not measured: no bar, not a bar at 0
            ax.bar(x, heights, width=0.8 / n, color=style.color(e.candidate), label=e.candidate)
        ax.set_xticks(range(len(scores)), [s.replace("_", " ") for s in scores], rotation=30, ha="right")
        ax.set_title(f"OOD set: {name}", pad=_legend_pad(n))
        ax.set_ylim(0.0, 1.0)
        ax.axhline(0.5, color="#8c959f", lw=0.8, ls=(0, (3, 3)))
        ax.grid(axis="x", visible=False)
    axes[0].set_ylabel("AUROC")
    _legend_above(axes[0], n)
    return fig


@register_figure(
    "group_rates",
    "Per-group rates",
    "Accuracy, true-positive rate, false-positive rate and selection rate for each group, with Clopper-Pearson "
    "exact 95% intervals (a rate from few positives or negatives has a wide one). Demographic parity compares selection rates; equalized odds compares TPR and FPR.",
)
def group_rates(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    rates = ("accuracy", "tpr", "fpr", "selection_rate")
    fig = Figure(figsize=(10.0, 2.9))
    axes = fig.subplots(1, 4, sharey=False)
    n = len(records)
    for ax, rate in zip(axes, rates):
        for i, e in enumerate(records):
            rows = e.details["per_group"]
            x = [j + (i - (n - 1) / 2) * 0.7 / n for j in range(len(rows))]
            y = [r[rate] if r[rate] is not None else float("nan") for r in rows]
            lo, hi = _error_bars(y, [(r[f"{rate}_low"], r[f"{rate}_high"]) for r in rows])
            ax.errorbar(x, y, yerr=[lo, hi], fmt="o", ms=4, capsize=2, elinewidth=1, color=style.color(e.candidate), label=e.candidate)
        groups = [r["group"] for r in records[0].details["per_group"]]
        ax.set_xticks(range(len(groups)), groups, rotation=30 if max(map(len, groups)) > 6 else 0, ha="right" if max(map(len, groups)) > 6 else "center")
        ax.set_title(rate.replace("_", " "), pad=_legend_pad(n) if ax is axes[0] else 6)
        ax.grid(axis="x", visible=False)
    axes[0].set_ylabel(f"group: {records[0].details['attribute']}")
    _legend_above(axes[0], n)
    return fig


@register_figure(
    "slices",
    "Worst slices",
    "Error rate of the slices with the most errors (metadata values and embedding clusters), with Clopper-Pearson exact 95% "
    "intervals; filled markers survive Holm's correction for the number of slices tried. The line is the overall error.",
)
def slices(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    fig = Figure(figsize=(7.5, 2.3 * len(records)))
    axes = fig.subplots(len(records), 1, squeeze=False, sharex=True)[:, 0]
    for ax, e in zip(axes, records):
        rows = e.details["worst"][:8][::-1]
        y = range(len(rows))
        err = [r["error"] for r in rows]
        lo, hi = _error_bars(err, [r["interval"] for r in rows])
        color = style.color(e.candidate)
        ax.errorbar(err, y, xerr=[lo, hi], fmt="none", ecolor=color, elinewidth=1, capsize=2)
        ax.scatter(err, y, s=22, zorder=3, color=[color if r["significant"] else "white" for r in rows], edgecolors=color)
        ax.axvline(e.details["overall_error"], color="#8c959f", lw=0.8, ls=(0, (3, 3)))
        ax.set_yticks(list(y), [f"{r['slice']} (n={r['n']})" for r in rows], fontsize=7.5)
        ax.set_xlim(0, 1)
        ax.set_title(e.candidate, color=color, loc="left")
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel("error rate")
    fig.subplots_adjust(hspace=0.35)
    return fig
