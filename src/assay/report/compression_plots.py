"""Figures for compression: who lost what, and which examples were forgotten.

Same contract as ``plots.py``; both read the ``comparison`` check's
``accuracy_drop`` records (one per derived candidate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..evidence import Evidence
from .plots import PlotStyle, register_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _variants(records: list[Evidence]) -> list[Evidence]:
    """Derived candidates that lost something (a variant that forgot nothing has nothing to draw)."""
    return [e for e in records if e.details.get("per_class") and e.details.get("relation") == "parent" and e.details.get("forgotten_count")]


@register_figure(
    "class_drops",
    "Recall lost per class, against the parent",
    "Each bar is a class's recall drop (parent minus variant) with its paired 95% bootstrap interval. "
    "Red bars are flagged: the class lost more than the harm multiple times the overall accuracy drop (dashed line), "
    "and significantly so — the disproportionate harm Hooker et al. (2019) found compressed models do.",
)
def class_drops(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    variants = _variants(records)
    if not variants:
        return None
    k = len(variants[0].details["per_class"])
    fig = Figure(figsize=(min(10.2, max(5.2, 1.5 + 0.32 * k)), 1.0 + 1.55 * len(variants)))
    axes = fig.subplots(len(variants), 1, squeeze=False, sharex=True)[:, 0]
    for ax, e in zip(axes, variants):
        rows = e.details["per_class"]
        drops = [r["drop"] for r in rows]
        err = [[max(0.0, r["drop"] - r["low"]) for r in rows], [max(0.0, r["high"] - r["drop"]) for r in rows]]
        colors = ["#cf222e" if r["flagged"] else style.color(e.candidate) for r in rows]
        ax.bar(range(k), drops, color=colors, yerr=err, capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "#57606a"})
        ax.axhline(0, color="#57606a", lw=0.8)
        limit = e.details.get("harm_multiple", 2.0) * max(e.value, 0.0)
        if limit > 0:
            ax.axhline(limit, color="#cf222e", lw=0.9, ls=(0, (4, 3)))
        ax.set_title(f"{e.candidate} vs {e.details['against']}", loc="left", fontsize=9)
        ax.set_ylabel("recall drop")
        ax.grid(axis="x", visible=False)
    names = [r["name"] for r in variants[0].details["per_class"]]
    axes[-1].set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 3 else 0)
    axes[-1].set_xlabel("class")
    fig.subplots_adjust(hspace=0.55)
    return fig


@register_figure(
    "forgotten_examples",
    "Forgotten examples",
    "Test examples the parent gets right and the variant gets wrong (Hooker et al. 2019's 'compression identified exemplars'); "
    "each is labelled true → the variant's prediction.",
)
def forgotten_examples(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    rows = [(e.candidate, p) for e in _variants(records) for p in e.details.get("forgotten_preview", []) if "image" in p or "signal" in p]
    if not rows:
        return None
    per_variant: dict[str, list[dict]] = {}
    for name, p in rows:
        per_variant.setdefault(name, []).append(p)
    cols = max(len(v) for v in per_variant.values())
    fig = Figure(figsize=(min(10.2, 1.0 + 1.15 * cols), 0.3 + 1.35 * len(per_variant)))
    axes = fig.subplots(len(per_variant), cols, squeeze=False)
    for r, (name, previews) in enumerate(per_variant.items()):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if c >= len(previews):
                ax.set_visible(False)
                continue
            p = previews[c]
            if "image" in p:
                ax.imshow(p["image"], cmap="gray_r", interpolation="nearest")
            else:
                ax.plot(p["signal"], lw=0.8, color="#24292f")
            ax.set_title(f"{p['label']} → {p['candidate']}", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.subplots_adjust(hspace=0.5, wspace=0.15)
    return fig
