"""The ``poisoning`` check: were planted (backdoor) examples in the training data, and did the model learn them?

From a candidate's penultimate features of the *training* split (read from
the prediction cache), every training example is scored per class by
spectral signatures (Tran et al. 2018) and activation clustering (Chen et al.
2018) on features whitened by the other classes' covariance (Hayase et al.
2021); ``poisoning_math.py`` holds the method and why it is combined so. A
class is called poisoned only when its features split into two separated
groups one of which is much more spread (examples of many kinds behind one
label); its suspect group is flagged.

Metrics:
  * ``suspected_poison_fraction``: the share of training examples flagged
    (Clopper-Pearson interval over the training examples);
  * ``attack_success_rate``: on a task poisoned by ``[task] poison``, the
    share of the evaluated split's inputs of other classes that, stamped with
    the trigger (the ``trigger`` view), are predicted as the target;
  * ``poison_recall``, ``poison_precision``, ``poison_false_positive_rate``:
    on a task poisoned by the option, the flags scored against the poisoned
    indices it recorded.

The check reads the cached features one class at a time (in a run folder
they are a memory map, so its memory grows with the largest class, not with
the training split); it is costly on a large training split (a forward pass
over it, with features), so a study runs it only when ``[checks] run`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._options import between, at_least
from ..data.task import Task
from ..data.transforms import poison_record
from ..data.triggers import Trigger
from ..stats import proportion_interval
from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare
from .poisoning_math import ClassFinding, confusion, detect, top_rows

PREVIEW_SIDE = 32  # images larger than this are shown subsampled to at most this many pixels a side
PREVIEW_LENGTH = 256  # signals: at most this many samples
PREVIEW_CHARS = 160  # texts: at most this many characters


@register_check
class Poisoning(Check):
    """Planted training examples, found from the candidate's features, and the backdoor's success when it is known."""

    name = "poisoning"
    metrics = declare(
        Metric("attack_success_rate", False, "share of other classes' inputs predicted as the target once the task's backdoor "
               "trigger is stamped", scale="proportion"),
        Metric("suspected_poison_fraction", False, "share of training examples flagged as planted (spectral signatures and "
               "activation clustering)", scale="proportion"),
        Metric("poison_recall", True, "share of the truly poisoned training examples flagged ([task] poison)",
               scale="proportion", gateable=False),
        Metric("poison_precision", True, "share of the flagged training examples that were truly poisoned ([task] poison)",
               scale="proportion", gateable=False),
        Metric("poison_false_positive_rate", False, "share of the clean training examples flagged ([task] poison)",
               scale="proportion", gateable=False),
    )
    covers = "training data carrying planted (backdoor) examples"
    needs = ("logits", "embeddings")
    splits = ("train",)
    by_default = False  # a pass over the training split with features: a study asks for it by name
    limits = {"dims": at_least(1), "min_silhouette": between(-1, 1), "min_spread_ratio": at_least(1), "previews": at_least(0)}

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        parts = []
        asr = records.get("attack_success_rate")
        if asr is not None:
            parts.append(f"backdoor success {asr.interval_text()}")
        found = records.get("suspected_poison_fraction")
        if found is not None:
            flagged = [c for c in found.details.get("classes", []) if c.get("poisoned")]
            if flagged:
                worst = max(flagged, key=lambda c: c["flagged"])
                parts.append(f"class {worst['class']}: {worst['flagged']} of {worst['n']} training examples suspect")
        return "; ".join(parts)

    def __init__(self, *, dims: int = 2, min_silhouette: float = 0.4, min_spread_ratio: float = 2.4, previews: int = 16) -> None:
        self.dims, self.min_silhouette, self.min_spread_ratio, self.previews = dims, min_silhouette, min_spread_ratio, previews

    def requests(self, task: Task, evaluated: tuple[str, ...] = ("test",)) -> set[tuple[str, str, bool]]:
        """The training split with features; the trigger view of each evaluated split when the task was poisoned."""
        out = {("train", "clean", True)}
        if poison_record(task) is not None:
            out |= {(split, "trigger", False) for split in evaluated}
        return out

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        record = poison_record(context.task)
        out = [self._attack_success(candidate, context, record)] if record is not None else []
        missing = candidate.capabilities.lacks("features")
        if missing:
            return [*out, self.skipped(candidate, f"the detector reads penultimate features, and '{candidate.name}' has none: {missing}")]
        train = context.predict(candidate, split="train", embeddings=True)
        findings = detect(train.embeddings, train.labels, dims=self.dims, min_silhouette=self.min_silhouette,
                          min_spread_ratio=self.min_spread_ratio, seed=context.seed)
        n = len(train.labels)
        flagged = np.zeros(n, bool)
        for rows, finding in findings.values():
            flagged[rows[finding.flagged]] = True
        truth = None
        if record is not None:
            truth = np.zeros(n, bool)
            truth[np.asarray(record["poisoned"], dtype=np.int64)] = True
        names = context.task.class_names
        details: dict[str, Any] = {
            "classes": [_class_row(names[c], rows, f, truth) for c, (rows, f) in findings.items()],
            "suspected": np.flatnonzero(flagged).tolist(),
            "previews": self._previews(context.task, findings, truth),
            "n": n, "modality": context.task.modality,
            "settings": {"dims": self.dims, "min_silhouette": self.min_silhouette, "min_spread_ratio": self.min_spread_ratio},
        }
        if record is not None:
            details["truth"] = {"poisoned": int(truth.sum()), "target": record["target"],
                                "trigger": Trigger.from_record(record["trigger"]).describe()}
        low, high = proportion_interval(int(flagged.sum()), n)
        out.append(self.evidence(candidate, "suspected_poison_fraction", flagged.mean(), (low, high), details=details))
        if truth is not None:
            out += self._against_truth(candidate, flagged, truth)
        return out

    def _attack_success(self, candidate, context: CheckContext, record: Mapping[str, Any]) -> Evidence:
        p = context.predict(candidate, view="trigger")
        hits = int((p.predicted == record["target_index"]).sum())
        trigger = Trigger.from_record(record["trigger"])
        details = {"target": record["target"], "trigger": trigger.describe(), "n": len(p.predicted),
                   "accuracy_with_trigger": float((p.predicted == p.labels).mean()) if len(p.labels) else float("nan")}
        low, high = proportion_interval(hits, len(p.predicted))
        return self.evidence(candidate, "attack_success_rate", hits / max(len(p.predicted), 1), (low, high), view="trigger", details=details)

    def _against_truth(self, candidate, flagged: np.ndarray, truth: np.ndarray) -> list[Evidence]:
        counts = confusion(flagged, truth)
        tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
        details = {"counts": counts}
        out = []
        for metric, hits, total in (("poison_recall", tp, tp + fn), ("poison_precision", tp, tp + fp), ("poison_false_positive_rate", fp, fp + tn)):
            if total == 0:  # precision with nothing flagged: no proportion to estimate
                continue
            out.append(self.evidence(candidate, metric, hits / total, proportion_interval(hits, total), details=details))
        return out

    def _previews(self, task: Task, findings: Mapping[int, tuple[np.ndarray, ClassFinding]], truth: np.ndarray | None) -> list[dict[str, Any]]:
        """The most suspicious flagged examples of each poisoned class, small enough to draw (images, signals) or read (texts)."""
        out = []
        for c, (rows, finding) in findings.items():
            if not finding.poisoned or not self.previews:
                continue
            chosen = top_rows(rows, finding.suspicion, finding.flagged, self.previews)
            position = {int(r): i for i, r in enumerate(rows)}
            for index in chosen:
                item = {"index": index, "class": task.class_names[c], "suspicion": round(float(finding.suspicion[position[index]]), 3)}
                if truth is not None:
                    item["poisoned"] = bool(truth[index])
                item.update(_preview(task, index))
                out.append(item)
        return out


def _class_row(name: str, rows: np.ndarray, finding: ClassFinding, truth: np.ndarray | None) -> dict[str, Any]:
    n, flagged = len(rows), int(finding.flagged.sum())
    row = {"class": name, "n": n, "flagged": flagged, "estimated_fraction": flagged / n if n else 0.0, "poisoned": finding.poisoned,
           "silhouette": round(finding.silhouette, 4), "spread_ratio": round(finding.spread_ratio, 4),
           "suspect_share": round(finding.suspect_share, 4), "excess_variance": round(finding.excess_variance, 4), "reason": finding.reason}
    if truth is not None:
        row["truly_poisoned"] = int(truth[rows].sum())
        row["true_fraction"] = row["truly_poisoned"] / n if n else 0.0
    return row


def _preview(task: Task, index: int) -> dict[str, Any]:
    """One training example as something the report can show: a small image, a short series or a text."""
    if task.modality == "text":
        text = str(task.train.meta.get("text", [""] * (index + 1))[index])
        return {"text": text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "")}
    if task.modality == "tabular":
        return {}
    x = np.asarray(task.train.x[index : index + 1])[0].astype(np.float64)
    if task.modality == "image":  # (C, H, W): a grey or RGB image, subsampled to at most PREVIEW_SIDE a side
        x = x[:3] if x.shape[0] >= 3 else x[:1]
        step = max(1, -(-max(x.shape[1:]) // PREVIEW_SIDE))
        return {"image": np.round(x[:, ::step, ::step], 3).tolist()}
    step = max(1, -(-x.shape[-1] // PREVIEW_LENGTH))  # (C, L): the first channel
    return {"signal": np.round(x[0, ::step], 4).tolist()}
