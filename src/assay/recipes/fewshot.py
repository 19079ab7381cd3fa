"""The ``fewshot`` recipe: learning from k labelled examples per class.

  * ``prototypes`` (Snell et al. 2017): each class is the mean of its
    examples' embeddings; a new input goes to the nearest prototype in
    squared Euclidean distance. Since -|f - p|^2 = 2 f.p - |p|^2 - |f|^2 and
    the last term is the same for every class, the classifier is exactly a
    linear head (W = 2 s p, b = -s |p|^2), saved and checked like any other.
  * ``setfit`` (Tunstall et al. 2022): the sentence encoder is first tuned
    contrastively on pairs (same class: cosine 1, different: 0), then a head
    is trained on its embeddings. Pairs are sampled ``pairs_per_example``
    positives and negatives per example, so their number (and memory) is
    linear in the number of labelled examples, not quadratic.

Embeddings come from a pretrained text encoder (``encoder = "minilm"``) or,
for other modalities, from a parent candidate's penultimate layer.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.task import Split
from ..errors import SpecError
from ..models import zoo
from ..models.candidate import Candidate, Provenance
from ..models.pretrained import weights_digest
from .base import RecipeContext, register_recipe
from .options import TrainingRecipe, training_options
from .transfer import encode_splits

STRATEGIES = ("prototypes", "setfit")


def sample_pairs(labels: np.ndarray, per_example: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``per_example`` positive and negative partners for each example: ``(P, 2)`` indices and ``(P,)`` targets.

    P = 2 * per_example * N, linear in N. A class with one example pairs
    with itself as its positive (still a valid, if easy, pair).
    """
    index = np.arange(len(labels))
    pairs, targets = [], []
    for i, y in enumerate(labels):
        same, other = index[labels == y], index[labels != y]
        if len(other) == 0:
            raise SpecError("fewshot: setfit needs at least two classes among the labelled examples")
        pairs += [(i, j) for j in rng.choice(same, per_example)] + [(i, j) for j in rng.choice(other, per_example)]
        targets += [1.0] * per_example + [0.0] * per_example
    return np.array(pairs, dtype=np.int64), np.array(targets, dtype=np.float32)


class _PairEncoder(nn.Module):
    """Cosine similarity of the two inputs of a pair ``(B, 2, T) -> (B,)``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        a, b = self.encoder(pairs[:, 0]), self.encoder(pairs[:, 1])
        return F.cosine_similarity(a, b)


def _pair_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(model(x), y.float())  # SetFit's CosineSimilarityLoss


@torch.no_grad()
def _pair_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    cos = model(x)
    return F.mse_loss(cos, y.float()).item(), ((cos > 0.5).float() == y.float()).float().mean().item()


@register_recipe
@training_options(epochs=1, lr=2e-5)
class FewShot(TrainingRecipe):
    """Few-shot classifiers on embeddings.

    Study file::

        [[recipe]]
        name = "setfit"
        kind = "fewshot"
        strategy = "setfit"        # or "prototypes"
        encoder = "minilm"         # or parent = "<candidate>" for image/signal tasks
    """

    kind = "fewshot"

    strategy: str = "prototypes"
    encoder: str | None = "minilm"
    parent: str | None = None
    scale: float = 10.0
    pairs_per_example: int = 20
    head_epochs: int = 200

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy '{self.strategy}'; use {' or '.join(STRATEGIES)}")
        if self.strategy == "setfit" and self.parent is not None:
            raise ValueError("setfit tunes a pretrained text encoder; drop 'parent' or use strategy = \"prototypes\"")

    def check_task(self, task, where: str) -> None:
        if self.parent is None and task.modality != "text":
            raise SpecError(f"{where}: a pretrained encoder is only installed for text; for {task.modality} data set parent = \"<a trained candidate>\"")

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        where = f"[[recipe]] '{name}'"
        torch.manual_seed(context.seed)
        if self.parent is not None:
            parent = context.parent(self.parent, where)
            model = copy.deepcopy(parent.model)
            model.frozen_prefixes = ()
            arch, digest = dict(parent.provenance.arch), None
        else:
            if task.modality != "text":
                raise SpecError(f"{where}: a pretrained encoder is only installed for text; for {task.modality} data set parent = \"<a trained candidate>\"")
            frozen = self.strategy == "prototypes"
            model = zoo.build("pretrained", input_shape=task.input_shape, num_classes=task.num_classes, source=self.encoder, frozen=frozen, where=where)
            digest = weights_digest(self.encoder)
            arch = {"name": "pretrained", "input_shape": list(task.input_shape), "num_classes": task.num_classes, "source": self.encoder,
                    "frozen": frozen, "weights_sha256": digest}
        model.eval()
        summary: dict[str, Any] = {}
        if self.strategy == "setfit":
            summary["contrastive"] = self._tune_encoder(model, name, context)
        if self.strategy == "prototypes":
            summary |= self._prototypes(model, context)
        else:
            summary |= self._head(model, name, context)
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest(),
                                parent=self.parent, parent_id=context.candidates[self.parent].id if self.parent else None)
        return Candidate(name, model.cpu().eval(), provenance, training=summary)

    def _embed(self, model, context: RecipeContext, cache: bool) -> dict[str, np.ndarray]:
        """Train and val embeddings; a frozen pretrained encoder's are shared through the run's cache."""
        key = f"{self.encoder}" if cache and self.parent is None else None
        return encode_splits(model, context.task, ("train", "val"), context.shared_dir if key else None, key or "")

    def _prototypes(self, model, context: RecipeContext) -> dict[str, Any]:
        task = context.task
        feats = self._embed(model, context, cache=True)["train"].astype(np.float64)
        protos = np.stack([feats[task.train.y == c].mean(0) for c in range(task.num_classes)])  # (K, D)
        with torch.no_grad():  # logits = -scale * |f - p|^2 up to a per-input constant
            model.head.weight.copy_(torch.from_numpy(2 * self.scale * protos).float())
            model.head.bias.copy_(torch.from_numpy(-self.scale * (protos**2).sum(1)).float())
        return {"examples_per_class": np.bincount(task.train.y, minlength=task.num_classes).tolist(), "train_seconds": 0.0}

    def _tune_encoder(self, model, name: str, context: RecipeContext) -> dict[str, Any]:
        task = context.task
        rng = np.random.default_rng(context.seed)
        pairs, targets = sample_pairs(task.train.y, self.pairs_per_example, rng)
        vpairs, vtargets = sample_pairs(task.val.y, max(2, self.pairs_per_example // 4), rng)
        x, xv = np.asarray(task.train.x), np.asarray(task.val.x)
        summary = context.fit(_PairEncoder(model.body), Split(x[pairs], targets), Split(xv[vpairs], vtargets),
                              self.train_config(batch_size=16, warmup_epochs=0, patience=self.epochs), loss=_pair_loss, evaluate=_pair_eval,
                              stage="pairs")
        return {**summary, "pairs": int(len(pairs))}

    def _head(self, model, name: str, context: RecipeContext) -> dict[str, Any]:
        task = context.task
        feats = self._embed(model, context, cache=False)
        return context.fit(model.head, Split(feats["train"], task.train.y), Split(feats["val"], task.val.y),
                           self.train_config(epochs=self.head_epochs, batch_size=16, lr=1e-2, patience=30), stage="head")

