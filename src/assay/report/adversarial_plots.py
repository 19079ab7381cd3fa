"""Figures for the adversarial check: robust accuracy against epsilon, parent -> child transfer, example perturbations.

Same contract as ``plots.py``. All read the adversarial check's
``adversarial_accuracy`` records: ``adversarial_curve`` every candidate's at
once (its ``details["curve"]``, with the Clopper-Pearson band; a candidate
whose figure carries gradient-masking warnings is drawn dashed);
``adversarial_transfer`` every compressed child's ``details["transfer"]``
(its parent's own white-box curve against the child's on the same
examples); ``adversarial_examples`` one candidate's ``details["examples"]``
(clean, adversarial and their difference for images; both traces for
signals), drawn per candidate by the Adversarial section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..evidence import Evidence
from .plots import PlotStyle, _legend_above, register_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _xy(curve: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.array([p[k] for p in curve], dtype=float) for k in ("epsilon", "accuracy", "low", "high"))  # type: ignore[return-value]


@register_figure(
    "adversarial_curve",
    "Robust accuracy against the attack's radius",
    "Accuracy on adversarial examples at each radius epsilon (worst case over the attacks run on that candidate), with its 95% "
    "Clopper-Pearson band over the attacked examples; the dotted line marks the study's headline epsilon. A dashed line is a "
    "figure the check found signs of gradient masking in (see the warnings): the true robust accuracy may be far lower.",
)
def adversarial_curve(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    shown = [e for e in records if e.details.get("curve")]
    if not shown:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    for e in shown:
        eps, acc, low, high = _xy(e.details["curve"])
        color = style.color(e.candidate)
        bold = e.candidate == style.chosen
        ax.fill_between(eps, low, high, color=color, alpha=0.12, lw=0)
        ax.plot(eps, acc, marker="o", ms=3.5, color=color, lw=2.4 if bold else 1.5, ls="--" if e.details.get("warnings") else "-",
                label=e.candidate + (" (warnings)" if e.details.get("warnings") else ""))
    headline = shown[0].details.get("headline_epsilon")
    if headline is not None:
        ax.axvline(headline, color="#8c959f", lw=1, ls=":")
    ax.set_xscale("log" if min(min(p["epsilon"] for p in e.details["curve"]) for e in shown) > 0 else "linear")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"epsilon ({shown[0].details.get('norm', 'linf')}; {shown[0].details.get('unit', '')})", fontsize=8)
    ax.set_ylabel("robust accuracy")
    _legend_above(ax, len(shown))
    return fig


@register_figure(
    "adversarial_transfer",
    "Parent -> child: do the parent's adversarial examples still fool the compressed model?",
    "For each child without gradients (int8, ONNX Runtime), the parent's robust accuracy under its own white-box attack (grey) and "
    "the child's on the same adversarial examples (coloured): curves that coincide mean compression kept the parent's weakness; "
    "a child above its parent is only as safe as the transfer attack is strong, which is why it also faces Square Attack.",
)
def adversarial_transfer(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    style = style or PlotStyle()
    shown = [e for e in records if e.details.get("transfer")]
    if not shown:
        return None
    fig = Figure(figsize=(3.3 * min(len(shown), 3), 3.0 * ((len(shown) + 2) // 3)))
    axes = np.atleast_1d(fig.subplots((len(shown) + 2) // 3, min(len(shown), 3), squeeze=False)).ravel()
    for ax, e in zip(axes, shown):
        t = e.details["transfer"]
        for curve, color, label in ((t["parent_curve"], "#8c959f", f"{t['from']} (own attack)"),
                                    (t["child_curve"], style.color(e.candidate), f"{e.candidate} (transfer)")):
            eps, acc, low, high = _xy(curve)
            ax.fill_between(eps, low, high, color=color, alpha=0.12, lw=0)
            ax.plot(eps, acc, marker="o", ms=3, color=color, lw=1.6, label=label)
        ax.set_title(f"{t['from']} -> {e.candidate}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epsilon", fontsize=8)
        ax.legend(loc="upper right", fontsize=7)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    axes[0].set_ylabel("robust accuracy")
    return fig


@register_figure(
    "adversarial_examples",
    "Adversarial examples",
    "Attacked examples at the headline epsilon: the clean input, the adversarial one and their difference (images), or both "
    "traces (signals), with the true class and each prediction.",
)
def adversarial_examples(records: list[Evidence], style: PlotStyle | None = None) -> Figure | None:
    from matplotlib.figure import Figure

    e = next((r for r in records if r.details.get("examples")), None)
    if e is None:
        return None
    shown = e.details["examples"]
    clean0 = np.asarray(shown[0]["clean"], dtype=float)
    images = clean0.ndim == 3
    fig = Figure(figsize=(1.6 * len(shown), 4.6 if images else 2.0))
    axes = fig.subplots(3 if images else 1, len(shown), squeeze=False)
    for j, ex in enumerate(shown):
        clean, adv = np.asarray(ex["clean"], dtype=float), np.asarray(ex["adversarial"], dtype=float)
        title = f"y={ex['label']}: {ex['clean_predicted']} -> {ex['adversarial_predicted']}"
        if images:
            for i, (picture, cmap, limits) in enumerate(((clean, "gray", (0, 1)), (adv, "gray", (0, 1)),
                                                         (adv - clean, "RdBu_r", (-ex["epsilon"], ex["epsilon"])))):
                ax = axes[i, j]
                shown_picture = picture.transpose(1, 2, 0) if picture.shape[0] in (3, 4) else picture[0]
                ax.imshow(np.clip(shown_picture, *limits) if i < 2 else shown_picture, cmap=cmap, vmin=limits[0], vmax=limits[1])
                ax.set_xticks([]), ax.set_yticks([])
                ax.grid(False)
                if j == 0:
                    ax.set_ylabel(("clean", "adversarial", "difference")[i], fontsize=8)
            axes[0, j].set_title(title, fontsize=8)
        else:
            ax = axes[0, j]
            ax.plot(clean.reshape(clean.shape[0], -1)[0], color="#8c959f", lw=1.2, label="clean")
            ax.plot(adv.reshape(adv.shape[0], -1)[0], color="#D55E00", lw=1.0, label="adversarial")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            if j == 0:
                ax.legend(fontsize=7)
    return fig
