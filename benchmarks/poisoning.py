"""Poisoned-data detection on digits: assay's poisoning check against ART's two detectors, same model and data, one run.

For each BadNets poisoning rate (5% and 10% of the training split, a 3x3
corner patch, relabelled '0'), one small CNN is trained through assay's own
recipe on the poisoned task; then, on that same model and the same training
examples:

* assay's ``poisoning`` check (its defaults), through a prediction cache
  with a folder, as in a study (the features streamed to disk and read back
  memory-mapped, one class at a time);
* ART 1.20's ``SpectralSignatureDefense`` and ``ActivationDefence`` on a
  ``PyTorchClassifier`` wrapping the model, untuned (their defaults, a batch
  size of 256 so they do not crawl). ART reads the activations of the last
  top-level module of a PyTorch model, which for assay's classifier is the
  head (the logits); so each is run twice: on that default layer, and on the
  penultimate features (a wrapper that lists the body last, so ART hooks it:
  the features assay reads).

Prints recall (share of the poisoned examples flagged) and false-positive
rate (share of the clean examples flagged) with Clopper-Pearson intervals,
the attack success rate on the trigger view and each detector's seconds.
Target: assay's recall >= 0.8 at FPR <= 0.05, and above both of ART's.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/poisoning.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from assay.checks.base import CheckContext, make_check
from assay.checks.poisoning_math import confusion
from assay.checks.predictions import PredictionCache
from assay.data.task_table import load_task
from assay.data.transforms import poison_record
from assay.recipes import RecipeContext, make_recipe
from assay.stats import proportion_interval


class BodyLast(nn.Module):
    """The same model, its body registered after its head: ART's "last layer" is then the penultimate features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.head = model.head
        self.body = model.body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def rates(flagged: np.ndarray, truth: np.ndarray) -> str:
    c = confusion(flagged, truth)
    recall, fpr = c["tp"] / (c["tp"] + c["fn"]), c["fp"] / (c["fp"] + c["tn"])
    r, f = proportion_interval(c["tp"], c["tp"] + c["fn"]), proportion_interval(c["fp"], c["fp"] + c["tn"])
    return f"recall {recall:.3f} [{r[0]:.3f}, {r[1]:.3f}]   FPR {fpr:.3f} [{f[0]:.3f}, {f[1]:.3f}]   ({c['tp']} of {c['tp'] + c['fn']} found, {c['fp']} clean flagged)"


def art_detectors(model: nn.Module, x: np.ndarray, y: np.ndarray, classes: int) -> dict[str, tuple[np.ndarray, float]]:
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    out = {}
    for layer, wrapped in (("logits (ART's default layer)", model), ("penultimate features", BodyLast(model))):
        clf = PyTorchClassifier(model=wrapped.eval(), loss=nn.CrossEntropyLoss(), input_shape=x.shape[1:], nb_classes=classes,
                                clip_values=(float(x.min()), float(x.max())), device_type="cpu")
        onehot = np.eye(classes, dtype=np.float32)[y]
        for name, make in (("SpectralSignatureDefense", lambda: SpectralSignatureDefense(clf, x, onehot, batch_size=256)),
                           ("ActivationDefence", lambda: ActivationDefence(clf, x, onehot))):
            start = time.perf_counter()
            _, is_clean = make().detect_poison()
            out[f"ART {name}, {layer}"] = (np.asarray(is_clean) == 0, time.perf_counter() - start)
    return out


def run(fraction: float, epochs: int, seed: int) -> None:
    task = load_task({"builtin": "digits", "poison": {"kind": "badnets", "fraction": fraction, "target": "0"}}, base_dir=Path("."), seed=seed)
    truth = np.zeros(len(task.train), bool)
    truth[poison_record(task)["poisoned"]] = True
    with tempfile.TemporaryDirectory() as work:
        recipe = make_recipe("train", {"arch": "cnn", "epochs": epochs, "arch_options": {"channels": [16, 32]}}, "benchmark")
        candidate = recipe.make("cnn", RecipeContext(task=task, work_dir=Path(work), progress=False, seed=seed))
    with tempfile.TemporaryDirectory() as folder:  # a run folder's cache, as a study has: the features are read memory-mapped
        context = CheckContext(task=task, predictions=PredictionCache(Path(folder)), seed=seed)
        start = time.perf_counter()
        records = {e.metric: e for e in make_check("poisoning", {}).run(candidate, context)}
        seconds = time.perf_counter() - start  # includes the forward passes over train (with features) and the trigger view
    flagged = np.zeros(len(truth), bool)
    flagged[records["suspected_poison_fraction"].details["suspected"]] = True
    print(f"\nBadNets {fraction:.0%} into '0' on digits: {int(truth.sum())} of {len(truth)} training examples poisoned; "
          f"attack success rate on the trigger view {records['attack_success_rate'].interval_text()}")
    print(f"  {'assay poisoning check':58s} {rates(flagged, truth)}   {seconds:.2f} s")
    for name, (found, took) in art_detectors(candidate.model, np.asarray(task.train.x), task.train.y, task.num_classes).items():
        print(f"  {name:58s} {rates(found, truth)}   {took:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for fraction in args.fractions:
        run(fraction, args.epochs, args.seed)


if __name__ == "__main__":
    main()
