"""Figures for the explain check: deletion/insertion curves, where each model looks, and single explained inputs.

Same contract as ``plots.py``. All read the explain check's
``faithfulness_gain`` records: ``explain_curves`` every candidate's at once
(one row each); ``class_attribution_maps`` (images, signals: each class's
full mean map), ``attribution_maps`` (its fallback for runs that kept only
each class's top positions), ``column_importance`` (tables) and
``explain_examples`` (the most confident right and wrong predictions with
their attributions) one candidate's details, drawn per candidate by the
Explanations section (``explain_section.py``).

One explained input is a dict as the check's ``details["examples"]`` hold
them (``role``, ``label``, ``predicted``, ``confidence``, ``method``, signed
per-feature ``attribution`` and the ``input``: an image's or signal's
``shape`` and ``values``, a table row's ``columns`` and raw ``values``, a
text's ``tokens``). ``draw_attribution`` draws one on an axis, for the report
and for ``assay explain`` alike (``attribution_figure``, ``write_attribution``);
text is highlighted HTML (``token_highlights``, ``tokens_html``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_path, write_text
from ..evidence import Evidence
from .plots import DPI, PALETTE, SCALE, PlotStyle, _style, register_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RANDOM = "#8c959f"
MAX_CLASSES = 10  # per-class panels beyond this get too small to read
MAX_COLUMNS = 12  # a table's bars beyond this get too thin to read: the most attributed ones are shown
SIGNED = "RdBu_r"  # attribution for the predicted class: red for, blue against, white nothing
FOR, AGAINST = (178, 24, 43), (33, 102, 172)  # the ends of RdBu_r, for highlighted tokens


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


@register_figure(
    "class_attribution_maps",
    "Where it looks, per class",
    "Mean |attribution| of the most faithful method over the explained examples: all of them, then each class's own "
    "(images: one map per class, every map on the same scale, brighter is more; signals: one line per class). "
    "A class whose map lights up away from the object, or a step every class leans on, is a shortcut to look into.",
)
def class_attribution_maps(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    """One candidate's full mean |attribution| map per class (``details["shortcuts"]["class_mean_abs"]``)."""
    from matplotlib.figure import Figure

    found = records[0].details.get("shortcuts", {})
    overall = np.asarray(found.get("mean_abs") or [], dtype=float)
    per_class = {str(k): np.asarray(v, dtype=float) for k, v in list((found.get("class_mean_abs") or {}).items())[:MAX_CLASSES]}
    if not overall.size or not per_class:
        return None
    shape = tuple(found.get("map_shape") or ())
    if len(shape) != 2:  # a signal: one line per class over the steps
        fig = Figure(figsize=(8.6, 3.0))
        ax = fig.add_subplot()
        steps = np.arange(overall.size)
        for i, (name, values) in enumerate(per_class.items()):
            ax.plot(steps, values, color=_class_color(i, len(per_class)), lw=1.2, label=f"class {name}")
        ax.plot(steps, overall, color="#24292f", lw=2.2, ls=(0, (4, 2)), label="all classes")
        ax.set_xlim(0, max(overall.size - 1, 1))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("step")
        ax.set_ylabel("mean |attribution|")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5)
        return fig
    panels = [("all classes", overall), *((f"class {name}", values) for name, values in per_class.items())]
    peak = max(float(np.nanmax(v)) for _, v in panels) or 1.0
    cols = min(6, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(1.55 * cols + 0.9, 1.75 * rows + 0.3))
    axes = fig.subplots(rows, cols, squeeze=False)
    shown = None
    for ax, (title, values) in zip(axes.ravel(), panels):
        shown = ax.imshow(values.reshape(shape), cmap="magma", vmin=0, vmax=peak, interpolation="nearest")
        _bare(ax)
        ax.set_title(title, fontsize=8.5)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02, label="mean |attribution|")
    return fig


@register_figure(
    "explain_examples",
    "Explained examples",
    "The most confident right and the most confident wrong predictions among the explained examples, each with the "
    "most faithful method's attribution for its predicted class: red counts for that class, blue against it, each panel "
    "on its own scale (images: over the grey input; signals: the signal coloured by it; tables: each column's share, "
    "its value in the label).",
)
def explain_examples(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    """One candidate's explained examples (``details["examples"]``) side by side; ``None`` for text (drawn as HTML)."""
    from matplotlib.figure import Figure

    examples = [x for x in records[0].details.get("examples") or [] if example_kind(x) != "text"]
    if not examples:
        return None
    kind = example_kind(examples[0])
    cols = {"image": 4, "signal": 2, "table": 2}[kind]
    cols = min(cols, len(examples))
    rows = -(-len(examples) // cols)
    size = {"image": (2.3, 2.75), "signal": (4.3, 2.5), "table": (4.3, 0.9 + 0.26 * min(MAX_COLUMNS, _width(examples[0])))}[kind]
    fig = Figure(figsize=(size[0] * cols, size[1] * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, example in zip(axes.ravel(), examples):
        draw_attribution(ax, example)
        ax.set_title(example_title(example, method=False), fontsize=8, loc="left")  # the method is in the figure's title
    for ax in axes.ravel()[len(examples):]:
        ax.set_visible(False)
    fig.subplots_adjust(wspace=0.55 if kind == "table" else 0.25, hspace=0.6)
    return fig


def example_kind(example: Mapping[str, Any]) -> str:
    """``image``, ``signal``, ``table`` or ``text``: what an explained input holds."""
    given = example.get("input") or {}
    if "tokens" in given:
        return "text"
    if "columns" in given:
        return "table"
    return "image" if len(given.get("shape") or ()) == 3 else "signal"


def example_title(example: Mapping[str, Any], *, method: bool = True) -> str:
    """Its role, then label, prediction with confidence and (unless a figure's title says it) method, on a second line."""
    label = example.get("label")
    truth = f"label {label} → " if label not in (None, "") else ""
    said = f", {example.get('method', '')}" if method else ""
    return f"{example.get('role', '')}\n{truth}predicted {example.get('predicted')} ({float(example.get('confidence', float('nan'))):.2f}){said}"


def draw_attribution(ax: Axes, example: Mapping[str, Any]) -> Any:
    """Draw one explained input with its signed attribution on ``ax``; returns the colour mapping (``None`` for a table).

    Images: the attribution as a heatmap over the grey input (the stronger, the
    more opaque); signals: each channel's line coloured by it; tables: a signed
    bar per column, the row's value in the label. The colour scale is
    symmetric around zero, so white means no attribution.
    """
    kind = example_kind(example)
    a = np.asarray(example["attribution"], dtype=float)
    peak = float(np.abs(a).max()) if a.size else 0.0
    peak = peak if peak > 0 and np.isfinite(peak) else 1.0
    given = example["input"]
    if kind == "image":
        values = np.asarray(given["values"], dtype=float).reshape(given["shape"])  # (C, H, W)
        heat = a.reshape(values.shape[1:])  # (H, W): one value per position, over its channels
        ax.imshow(values.mean(axis=0), cmap="gray", interpolation="nearest")
        shown = ax.imshow(heat, cmap=SIGNED, vmin=-peak, vmax=peak, alpha=np.clip(0.15 + 0.7 * np.abs(heat) / peak, 0, 1),
                          interpolation="nearest")
        _bare(ax)
        return shown
    if kind == "signal":
        from matplotlib.collections import LineCollection
        from matplotlib.colors import Normalize

        values = np.asarray(given["values"], dtype=float).reshape(given["shape"])  # (C, L)
        steps = np.arange(values.shape[1])
        shown = None
        for channel in values:
            ax.plot(steps, channel, color="#d0d7de", lw=3.2, zorder=1)  # a pale trace, so white (no attribution) stays visible
            points = np.stack([steps, channel], axis=1)  # (L, 2)
            shown = LineCollection(np.stack([points[:-1], points[1:]], axis=1), cmap=SIGNED, norm=Normalize(-peak, peak), lw=2.0, zorder=2)
            shown.set_array((a[:-1] + a[1:]) / 2)  # a segment takes the mean of its two steps
            ax.add_collection(shown)
        ax.autoscale_view()
        ax.set_xlabel("step")
        return shown
    if kind == "table":
        columns, values = list(given["columns"]), list(given["values"])
        order = np.argsort(-np.abs(a), kind="stable")[:MAX_COLUMNS][::-1]  # the strongest on top
        ax.barh(range(len(order)), a[order], color=["#%02x%02x%02x" % (FOR if a[j] >= 0 else AGAINST) for j in order], height=0.65)
        ax.axvline(0, color="#57606a", lw=0.8)
        ax.set_yticks(range(len(order)), [f"{_short(str(columns[j]), 24)} = {_short(str(values[j]), 12)}" for j in order], fontsize=7.5)
        ax.grid(axis="y", visible=False)
        hidden = len(a) - len(order)
        ax.set_xlabel("attribution" + (f" ({hidden} weaker columns not shown)" if hidden else ""))
        return None
    raise ValueError("text is highlighted as HTML (token_highlights), not drawn")


def attribution_figure(example: Mapping[str, Any]) -> Figure:
    """One explained input (an image, a signal or a table row) as a figure of its own, with a colour bar."""
    from matplotlib.figure import Figure

    kind = example_kind(example)
    size = {"image": (3.6, 3.6), "signal": (7.0, 2.8), "table": (6.0, 1.1 + 0.3 * min(MAX_COLUMNS, _width(example)))}[kind]
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    shown = draw_attribution(ax, example)
    ax.set_title(example_title(example), fontsize=9, loc="left")
    if shown is not None:
        fig.colorbar(shown, ax=ax, shrink=0.85, pad=0.03, label="attribution")
    return fig


def write_attribution(example: Mapping[str, Any], stem: Path) -> Path:
    """Write one explained input beside ``stem``, atomically: ``stem.png`` (images, signals, tables) or ``stem.html`` (text)."""
    stem = Path(stem)
    if example_kind(example) == "text":
        path = stem.with_name(stem.name + ".html")
        write_text(path, tokens_html(example))
        return path
    path = stem.with_name(stem.name + ".png")
    with _style():
        fig = attribution_figure(example)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI * SCALE, bbox_inches="tight", pad_inches=0.06, metadata={"Software": None})
    return path


def token_highlights(tokens: Sequence[str], attribution: Sequence[float]) -> list[dict[str, Any]]:
    """Per token: its text, a highlight colour (red for the predicted class, blue against), an opacity in [0.06, 0.9] and a hover title."""
    a = np.asarray(attribution, dtype=float)
    peak = float(np.abs(a).max()) if a.size else 0.0
    peak = peak if peak > 0 and np.isfinite(peak) else 1.0
    return [{"text": str(t), "rgb": FOR if v >= 0 else AGAINST, "alpha": round(0.06 + 0.84 * abs(v) / peak, 3), "value": float(v),
             "title": f"attribution {v:+.4g}"} for t, v in zip(tokens, a)]


def tokens_html(example: Mapping[str, Any]) -> str:
    """A small standalone HTML page: the text's tokens highlighted by their attribution; every string escaped."""
    spans = "".join(f'<span class="tok" style="background: rgba({t["rgb"][0]}, {t["rgb"][1]}, {t["rgb"][2]}, {t["alpha"]})" '
                    f'title="{html.escape(t["title"])}">{html.escape(t["text"])}</span>'
                    for t in token_highlights(example["input"]["tokens"], example["attribution"]))
    head, detail = example_title(example).split("\n", 1)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html.escape(f"{head}: {detail}") + "</title>\n"
        "<style>body { font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; color: #1f2328; } "
        ".tokens { display: flex; flex-wrap: wrap; gap: 4px 3px; margin: 1em 0; } "
        ".tok { font-family: ui-monospace, monospace; font-size: 14px; border-radius: 4px; padding: 1px 5px; } "
        ".hint { color: #59636e; font-size: 13px; }</style></head>\n<body>\n"
        f"<h1>{html.escape(head)}</h1>\n<p>{html.escape(detail)}</p>\n<div class=\"tokens\">{spans}</div>\n"
        "<p class=\"hint\">Each token's attribution to the predicted class: "
        f"<span class=\"tok\" style=\"background: rgba({FOR[0]}, {FOR[1]}, {FOR[2]}, 0.6)\">red</span> counts for it, "
        f"<span class=\"tok\" style=\"background: rgba({AGAINST[0]}, {AGAINST[1]}, {AGAINST[2]}, 0.6)\">blue</span> against it; "
        "the stronger the colour, the larger the share. Hover a token for its value.</p>\n</body></html>\n"
    )


def _bare(ax: Axes) -> None:
    ax.set_axis_off()  # no ticks, spines or grid: a picture (and far less for Agg to draw in a grid of panels)


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _width(example: Mapping[str, Any]) -> int:
    return len(example.get("attribution") or ())


def _class_color(i: int, n: int) -> str:
    if n <= len(PALETTE):
        return PALETTE[i]
    from matplotlib import colormaps

    rgb = colormaps["tab20" if n > 10 else "tab10"](i % 20)[:3]
    return "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in rgb)
