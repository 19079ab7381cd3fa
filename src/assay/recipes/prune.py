"""The ``prune`` recipe: fewer weights, fine-tuned back through the one training loop.

Two methods:

* ``channels`` — structured pruning with torch-pruning: whole channels
  (convolutions) or units (MLP layers) with the smallest group L2 norm are
  removed, together with everything that depends on them (BatchNorm, the
  next layer's inputs). The result is a smaller architecture of the same
  family (``cnn`` with fewer ``channels``, ``mlp`` with fewer ``hidden``),
  so it really runs faster and saves and loads like any zoo model.
* ``magnitude`` — global unstructured magnitude pruning (Han et al. 2015):
  the smallest weights across all Linear and convolution layers are zeroed.
  Dense kernels do not run faster on zeros; this shrinks the model only
  once compressed, and is here because it is the reference point.

Both prune in ``steps`` equal increments, each followed by fine-tuning
(Zhu & Gupta 2017 found gradual pruning beats one-shot).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from ..errors import SpecError, require
from ..models import zoo
from ..models.candidate import Candidate
from ..models.inputs import as_input
from .base import RecipeContext, derived_provenance, register_recipe
from .options import TrainingRecipe, training_options

METHODS = ("channels", "heads", "magnitude")
_WIDTH_OPTION = {"cnn": "channels", "mlp": "hidden"}  # the zoo option structured pruning changes


@register_recipe
@training_options(lr=None, batch_size=64)
class Prune(TrainingRecipe):
    """Prune the parent to ``sparsity`` in ``steps``, fine-tuning after each.

    Study file::

        [[recipe]]
        name = "cnn-pruned"
        kind = "prune"
        parent = "cnn"
        method = "channels"   # or "magnitude"
        sparsity = 0.5        # fraction of channels (or weights) removed
    """

    kind = "prune"

    parent: str
    method: str = "channels"
    sparsity: float = 0.5
    steps: int = 3
    epochs_per_step: int = 8

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method '{self.method}'; available: {', '.join(METHODS)}")
        if not 0 < self.sparsity < 1:
            raise ValueError(f"'sparsity' must be in (0, 1), got {self.sparsity}")
        if self.steps < 1 or self.epochs_per_step < 0:
            raise ValueError("'steps' must be at least 1 and 'epochs_per_step' at least 0")
        if self.lr is None:  # a pretrained encoder wants a gentle fine-tune
            self.lr = 5e-5 if self.method == "heads" else 1e-3

    def make(self, name: str, context: RecipeContext) -> Candidate:
        where = f"[[recipe]] '{name}'"
        parent = context.float_parent(self.parent, where)
        arch = dict(parent.provenance.arch)
        if self.method == "channels" and arch["name"] not in _WIDTH_OPTION:
            raise SpecError(f"{where}: channel pruning supports {' and '.join(_WIDTH_OPTION)}, not '{arch['name']}'; use method = \"heads\" for a pretrained encoder, \"magnitude\", or distill to a smaller student")
        if self.method == "heads" and arch["name"] != "pretrained":
            raise SpecError(f"{where}: head pruning supports pretrained encoders, not '{arch['name']}'; use method = \"channels\" or \"magnitude\"")
        torch.manual_seed(context.seed)
        model = copy.deepcopy(parent.model).cpu()
        if arch.get("frozen"):  # pruned pretrained weights are no longer the source's: saved with the candidate
            arch["frozen"] = False
            model.frozen_prefixes = ()
        if self.method == "channels":
            prune_step = self._channel_steps(model, context)
        elif self.method == "heads":
            prune_step = self._head_steps(model, arch)
        else:
            prune_step = self._magnitude_steps(model)
        history: list[dict[str, Any]] = []
        seconds, best = 0.0, 0
        for step in range(1, self.steps + 1):
            prune_step(step)
            if self.epochs_per_step:
                config = self.train_config(epochs=self.epochs_per_step, warmup_epochs=0, patience=self.epochs_per_step, weight_decay=0.0)
                summary = context.fit(model, context.task.train, context.task.val, config, stage=f"step{step}", seed=context.seed + step)
                model.cpu()
                seconds += summary["train_seconds"]
                best = len(history) + summary["best_epoch"]  # the last step's kept epoch, counted across steps
                history += [{**row, "epoch": len(history) + i + 1, "step": step} for i, row in enumerate(summary["history"])]
        if self.method == "channels":
            arch[_WIDTH_OPTION[arch["name"]]] = _widths(model, arch["name"])
            model = _rebuilt(model, arch)
        else:
            _make_permanent(model)
        kept = _sparsity(model)
        training = {"epochs_run": len(history), "best_epoch": best, "stopped_early": False, "train_seconds": round(seconds, 3),
                    "history": history, "weight_sparsity": kept, "method": self.method}
        return Candidate(name, model, derived_provenance(parent, self, arch=arch), training=training)

    def _channel_steps(self, model: nn.Module, context: RecipeContext):
        tp = require("torch_pruning", "edge")
        example = as_input(context.task.train.x[:2])
        pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=self.sparsity, iterative_steps=self.steps, ignored_layers=[model.head])
        return lambda step: pruner.step()

    def _head_steps(self, model: nn.Module, arch: dict[str, Any]):
        """Each step keeps the heads with the largest weights in every layer; ``arch["kept_heads"]`` records them by original index."""
        from ..models.pretrained import head_importance, keep_heads

        for p in model.parameters():
            p.requires_grad_(True)  # the encoder is fine-tuned after each cut
        original = [list(range(len(scores))) for scores in head_importance(model.body)]
        kept = [list(heads) for heads in (arch.get("kept_heads") or original)]

        def step(i: int) -> None:
            target = [max(1, round(len(heads) * (1 - self.sparsity * i / self.steps))) for heads in original]
            scores = head_importance(model.body)
            local = [sorted(torch.topk(s, k).indices.tolist()) for s, k in zip(scores, target)]
            keep_heads(model.body, local)
            kept[:] = [[layer[j] for j in chosen] for layer, chosen in zip(kept, local)]
            arch["kept_heads"] = [list(k) for k in kept]

        return step

    def _magnitude_steps(self, model: nn.Module):
        layers = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
        total = sum(m.weight.numel() for m, _ in layers)

        def step(i: int) -> None:
            target = round(total * self.sparsity * i / self.steps)
            already = sum(int((getattr(m, "weight_mask", torch.ones(1)) == 0).sum()) for m, _ in layers)
            # L1Unstructured on a pruned tensor ranks only the weights still alive, so the increment is what is asked.
            torch_prune.global_unstructured(layers, pruning_method=torch_prune.L1Unstructured, amount=max(0, target - already))

        return step


def _widths(model: nn.Module, arch: str) -> list[int]:
    kinds = (nn.Conv1d, nn.Conv2d) if arch == "cnn" else (nn.Linear,)
    return [m.out_channels if arch == "cnn" else m.out_features for m in model.body.modules() if isinstance(m, kinds)]


def _rebuilt(pruned: nn.Module, arch: dict[str, Any]) -> nn.Module:
    """A fresh zoo model of the pruned shape holding the pruned weights, so it saves and loads like any other."""
    options = {k: v for k, v in arch.items() if k not in ("name", "input_shape", "num_classes")}
    model = zoo.build(arch["name"], input_shape=arch["input_shape"], num_classes=arch["num_classes"], **options)
    model.load_state_dict(pruned.state_dict())
    return model.eval()


def _make_permanent(model: nn.Module) -> None:
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")


def _sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over Linear and convolution layers."""
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    return float(sum(int((w == 0).sum()) for w in weights) / max(1, sum(w.numel() for w in weights)))
