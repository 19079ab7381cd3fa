"""Figures the report draws from Evidence details, by name.

An Evidence record names its figures (``figures=("reliability_diagram",)``).
The report gathers that metric's records across all candidates and calls
``FIGURES[name](records)``, so one plot can overlay every candidate. Adding a
figure is adding one function here with ``@register_figure``.

Matplotlib loads inside the functions so ``import assay`` stays fast. Figures
are built without pyplot (no GUI backend, no global state), rendered by Agg to
PNG and embedded as ``data:`` URIs, so the page needs no other file.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..evidence import Evidence
from .data import ordered

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe & Ito (2008): distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7F7F7F", "#332288")
DPI = 110  # the size a figure is shown at on the page
SCALE = 2  # pixels per shown pixel, so figures stay sharp on high-density laptop screens
MAX_CONFUSION = 4  # the chosen candidate plus at most 3 others, or the panels get too small to read

_RC = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8.5,
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#8c959f", "axes.linewidth": 0.8,
    "axes.grid": True, "grid.color": "#e6e9ed", "grid.linewidth": 0.7, "axes.axisbelow": True,
    "xtick.color": "#57606a", "ytick.color": "#57606a", "axes.labelcolor": "#24292f", "text.color": "#24292f",
    "legend.frameon": False, "figure.facecolor": "white",
}


@dataclass(frozen=True)
class PlotStyle:
    """Colours by candidate, the same in every figure, and the chosen candidate."""

    colors: Mapping[str, str] = field(default_factory=dict)
    chosen: str | None = None

    @classmethod
    def for_candidates(cls, names: Sequence[str], chosen: str | None = None) -> PlotStyle:
        return cls({n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}, chosen)

    def color(self, name: str) -> str:
        return self.colors.get(name) or PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]  # stable across processes, unlike hash()


@dataclass(frozen=True)
class Rendered:
    """A drawn figure ready for the page, or a note saying why there is none."""

    name: str
    title: str
    caption: str = ""
    src: str = ""  # data:image/png;base64,...
    width: int = 0  # CSS pixels
    height: int = 0
    note: str = ""

    @property
    def wide(self) -> bool:
        return self.width > 560


FigureFn = Callable[..., "Figure | None"]
FIGURES: dict[str, FigureFn] = {}
TITLES: dict[str, tuple[str, str]] = {}  # name -> (title, caption)


def register_figure(name: str, title: str, caption: str) -> Callable[[FigureFn], FigureFn]:
    """Decorator adding ``fn(records, style=None) -> Figure`` to ``FIGURES`` under ``name``."""

    def add(fn: FigureFn) -> FigureFn:
        FIGURES[name] = fn
        TITLES[name] = (title, caption)
        return fn

    return add


def render(name: str, records: list[Evidence], style: PlotStyle | None = None) -> Rendered:
    """Draw figure ``name`` from ``records``; an unknown name gives a note, never an exception."""
    if name not in FIGURES:
        return Rendered(name, name, note=f"Figure '{name}' is not known to this version of assay's report; its data is in the evidence details.")
    style = style or PlotStyle.for_candidates([e.candidate for e in records])
    return draw(name, lambda: FIGURES[name](records, style=style))


def draw(name: str, build: Callable[[], Figure | None]) -> Rendered:
    """Run ``build`` under the report's style and encode its figure for the page."""
    title, caption = TITLES.get(name, (name, ""))
    try:
        with _style():
            fig = build()
            if fig is None:
                return Rendered(name, title, note="Nothing to draw for this run.")
            src, width, height = to_data_uri(fig)
    except Exception as error:  # noqa: BLE001 — one malformed record must not cost the whole report
        return Rendered(name, title, note=f"Could not draw '{name}': {type(error).__name__}: {error}")
    return Rendered(name, title, caption, src, width, height)


def to_data_uri(fig: Figure) -> tuple[str, int, int]:
    """``(data URI, shown width, shown height)`` of a figure as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI * SCALE, bbox_inches="tight", pad_inches=0.06, metadata={"Software": None})
    png = buffer.getvalue()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk: the PNG's pixel size
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii"), round(width / SCALE), round(height / SCALE)


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield


def _legend_above(ax: Any, n: int) -> None:
    # Above the axes, so no legend ever hides a data point.
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=min(n, 3), borderaxespad=0.2, handlelength=1.6)


@register_figure(
    "reliability_diagram",
    "Reliability diagram",
    "Accuracy against mean confidence in each equal-width confidence bin (marker area grows with the "
    "bin's count): on the dashed diagonal, a confidence of 0.9 is right 90% of the time. The axes are zoomed "
    "to the occupied bins. Below: test examples per bin (log scale).",
)
def reliability_diagram(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    fig = Figure(figsize=(5.2, 4.4))
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1.1), hspace=0.08)
    ax = fig.add_subplot(grid[0])
    counts = fig.add_subplot(grid[1], sharex=ax)
    occupied = [b for e in records for b in e.details.get("bins", []) if b.get("count")]
    lo = math.floor(min((b["lo"] for b in occupied), default=0.0) * 10) / 10
    lowest = min([lo] + [b["accuracy"] for b in occupied if b.get("accuracy") is not None])
    biggest = max((b["count"] for b in occupied), default=1)
    ax.plot([0, 1], [0, 1], ls=(0, (4, 3)), color="#8c959f", lw=1, label="perfectly calibrated")
    for i, e in enumerate(records):
        color, bins = style.color(e.candidate), e.details.get("bins", [])
        used = [b for b in bins if b.get("count") and b.get("accuracy") is not None]
        # Marker area grows with the bin's count: a bin of one example should not look like evidence.
        x, y = [b["confidence"] for b in used], [b["accuracy"] for b in used]
        ax.plot(x, y, lw=1.0, color=color, alpha=0.4)
        ax.scatter(x, y, s=[16 + 70 * math.sqrt(b["count"] / biggest) for b in used], color=color, zorder=3,
                   edgecolors="white", linewidths=0.6, label=f"{e.candidate}  ECE {e.interval_text()}")
        width = [(b["hi"] - b["lo"]) / len(records) for b in bins]
        counts.bar([b["lo"] + i * w for b, w in zip(bins, width)], [b.get("count") or 0 for b in bins],
                   width=width, align="edge", color=color, alpha=0.65, lw=0)
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(max(0.0, lowest - 0.03), 1.01)
    ax.set_ylabel("accuracy")
    ax.tick_params(labelbottom=False)
    _legend_above(ax, 1)
    if occupied:
        counts.set_yscale("log")
        counts.set_ylim(0.7, max(b["count"] for b in occupied) * 2)
    counts.set_ylabel("count")
    counts.set_xlabel("confidence")
    return fig


@register_figure(
    "per_class_recall",
    "Recall per class",
    "Each class's recall with its Clopper-Pearson exact 95% interval; the lowest is the "
    "worst_class_recall metric. Few examples per class make these intervals wide.",
)
def per_class_recall(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    classes = list(dict.fromkeys(str(pc["class"]) for e in records for pc in e.details.get("per_class", [])))
    k, n = len(classes), len(records)
    fig = Figure(figsize=(min(10.2, max(5.2, 1.2 + k * (0.12 * n + 0.15))), 3.7))
    ax = fig.add_subplot()
    lows = [1.0]
    for i, e in enumerate(records):
        rows = [pc for pc in e.details.get("per_class", []) if pc.get("recall") is not None]
        x = [classes.index(str(pc["class"])) + (i - (n - 1) / 2) * 0.7 / n for pc in rows]
        y = [pc["recall"] for pc in rows]
        below = [max(0.0, pc["recall"] - (pc.get("low") if pc.get("low") is not None else pc["recall"])) for pc in rows]
        above = [max(0.0, (pc.get("high") if pc.get("high") is not None else pc["recall"]) - pc["recall"]) for pc in rows]
        lows += [a - b for a, b in zip(y, below)]
        worst = e.details.get("worst_class")
        label = e.candidate + (f"  (worst: class {worst}, {e.value:.3f})" if worst is not None and e.value < 1 else "")
        ax.errorbar(x, y, yerr=[below, above], fmt="o", ms=4, capsize=2, elinewidth=1, color=style.color(e.candidate), label=label)
    long_names = k > 20 or max((len(c) for c in classes), default=0) > 3
    ax.set_xticks(range(k), classes, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylim(max(0.0, min(lows) - 0.04), 1.02)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("class")
    ax.set_ylabel("recall")
    _legend_above(ax, n)
    return fig


@register_figure(
    "confusion_matrix",
    "Confusion matrices",
    "Rows are the true class, columns the prediction. Colour is the share of the row; numbers are counts, "
    "with mistakes in red. The chosen candidate is first; at most four are shown.",
)
def confusion_matrix(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    import numpy as np
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    by_name = {e.candidate: e for e in records}
    shown = [by_name[n] for n in ordered(list(by_name), style.chosen)[:MAX_CONFUSION]]
    k = len(shown[0].details["class_names"])
    panel = 2.5 if k <= 12 else 3.3
    fig = Figure(figsize=(min(10.2, panel * len(shown) + 0.3), panel + 0.45))
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for j, (ax, e) in enumerate(zip(axes, shown)):
        cm = np.asarray(e.details["confusion_matrix"], dtype=float)  # (K, K): rows true, columns predicted
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if k <= 15:
            for (r, c), count in np.ndenumerate(cm):
                if count:
                    tone = "white" if share[r, c] > 0.6 else ("#cf222e" if r != c else "#24292f")
                    ax.text(c, r, f"{count:.0f}", ha="center", va="center", fontsize=7 if k > 8 else 8, color=tone,
                            fontweight="bold" if r != c else "normal")
        labels = [str(c) for c in e.details["class_names"]] if k <= 20 else []
        ax.set_xticks(range(k) if labels else [], labels, fontsize=7, rotation=90 if max(map(len, labels), default=0) > 3 else 0)
        ax.set_yticks(range(k) if labels else [], labels, fontsize=7)
        ax.tick_params(length=0)
        ax.set_title(e.candidate + ("  (chosen)" if e.candidate == style.chosen else ""), color=style.color(e.candidate), fontweight="bold")
        ax.set_xlabel("predicted")
        if j == 0:
            ax.set_ylabel("true")
    return fig


@register_figure(
    "latency",
    "Latency at batch size 1",
    "Each dot is one timed call with a single input, after warm-up; boxes span the quartiles and the line "
    "is the median (p50). Timings hold for the device named above the plot only.",
)
def latency(records: list[Evidence], style: PlotStyle | None = None) -> Figure:
    import numpy as np
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    samples = [np.asarray(e.details.get("batch1_ms", []), dtype=float) for e in records]
    n = len(records)
    fig = Figure(figsize=(min(10.2, max(4.8, 1.8 + 1.15 * n)), 3.7))
    ax = fig.add_subplot()
    colors = [style.color(e.candidate) for e in records]
    boxes = ax.boxplot([s if s.size else [np.nan] for s in samples], positions=range(n), widths=0.5, showfliers=False,
                       patch_artist=True, medianprops={"color": "#24292f", "lw": 1.5})
    for patch, color in zip(boxes["boxes"], colors):
        patch.set(facecolor=color, alpha=0.22, edgecolor=color)
    rng = np.random.default_rng(0)  # fixed jitter: rebuilding the report redraws the same picture
    for i, (s, color) in enumerate(zip(samples, colors)):
        ax.scatter(i + rng.uniform(-0.18, 0.18, s.size), s, s=8, color=color, alpha=0.5, lw=0, zorder=3)
    ax.set_xticks(range(n), [f"{e.candidate}\np50 {e.interval_text().partition(' [')[0]} ms" for e in records])
    ax.grid(axis="x", visible=False)
    everything = np.concatenate([s for s in samples if s.size] or [np.ones(1)])
    if everything.min() > 0 and everything.max() / everything.min() > 20:
        ax.set_yscale("log")
    else:
        # From zero, so a 2x difference looks like one; a few stray calls (a context switch) must
        # not squash the boxes, so the axis stops above the 99th percentiles and says what it hides.
        top = max((np.percentile(s, 99) for s in samples if s.size), default=1.0) * 1.15
        hidden = int((everything > top).sum())
        ax.set_ylim(0, top if hidden else None)
        if hidden:
            ax.text(1.0, 1.0, f"{hidden} slower call{'s' if hidden > 1 else ''} above the axis", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, color="#57606a")
    ax.set_ylabel("milliseconds per call")
    where = {f"{e.details.get('device', '?')}, {e.details.get('threads', '?')} threads" for e in records if "device" in e.details}
    if len(where) == 1:
        ax.set_title(f"measured on {where.pop()}", loc="left", color="#57606a")
    return fig
