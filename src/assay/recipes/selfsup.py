"""The ``selfsup`` recipe: contrastive pretraining on unlabelled data, then a probe.

SimCLR (Chen et al. 2020): two random augmentations of each unlabelled
input are pulled together and pushed away from the rest of the batch by the
NT-Xent loss; the encoder (a zoo architecture's body) is then kept and a
head trained on the few labels, frozen (``then = "linear-probe"``) or
fine-tuned (``then = "finetune"``). Augmentations are the task's own
corruptions from ``data/corruptions.py`` at random mild severities, so the
same code that tests robustness also teaches invariance. Both stages run
through the one training loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._io import atomic_path
from ..data.corruptions import CORRUPTIONS
from ..data.task import Split
from ..errors import SpecError
from ..models import zoo
from ..models.candidate import Candidate, Provenance
from ..models.forward import forward_pass
from .base import RecipeContext, check_trainable, register_recipe
from .options import TrainingRecipe, checked_arch, training_options
from .train import _jsonable, arch_options_for

def token_dropout(ids: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Drop a share of the real tokens (they become padding, which token models skip); text's augmentation."""
    rate = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    out = ids.copy()
    hit = (rng.random(ids.shape) < rate) & (ids > 0)
    hit[:, 0] = False  # keep [CLS]
    out[hit] = 0
    return out


# Which corruptions make good augmentations, and their severity range, by modality.
AUGMENT = {
    "image": (("affine", (1, 3)), ("gaussian_noise", (1, 2)), ("occlusion", (1, 2)), ("contrast", (1, 2))),
    "signal": (("time_shift", (1, 4)), ("amplitude", (1, 3)), ("noise", (1, 3)), ("dropout", (1, 2))),
    "text": (("token_dropout", (2, 4)),),
}


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: each view's positive is the other view of the same input, among 2B - 1 candidates."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, targets)


class Augmenter:
    """Random chains of the task's corruptions at mild severities, drawn per example.

    Each example draws its own chain (which corruptions, at which severity).
    Drawn once per batch instead, every input of a view shares one global
    change (say, lower contrast): batch normalisation then removes it in
    training but not at evaluation, and the negatives share it, which makes
    the contrastive task easier than the invariance it should teach.
    """

    def __init__(self, modality: str, seed: int, strength: float = 1.0) -> None:
        if modality not in AUGMENT:
            raise SpecError(f"selfsup: no augmentations for {modality} data; it supports {', '.join(AUGMENT)}")
        ops = {**CORRUPTIONS.get(modality, {}), "token_dropout": token_dropout}
        self.ops = [(ops[name], levels) for name, levels in AUGMENT[modality]]
        self.rng = np.random.default_rng(seed)
        self.strength = strength

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().cpu().numpy().copy()
        for fn, (lo, hi) in self.ops:
            hit = self.rng.random(len(a)) < 0.8 * self.strength
            severity = self.rng.integers(lo, hi + 1, len(a))
            for level in range(lo, hi + 1):  # one call per severity level keeps the corruptions vectorised
                rows = np.flatnonzero(hit & (severity == level))
                if len(rows):
                    a[rows] = fn(a[rows], level, self.rng).astype(a.dtype)
        return torch.from_numpy(np.ascontiguousarray(a)).to(x.device)


class _Contrastive(nn.Module):
    """Encoder body plus a projection head; the head is dropped after pretraining."""

    def __init__(self, body: nn.Module, width: int, proj: int = 64) -> None:
        super().__init__()
        self.body = body
        self.projector = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, proj))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.body(x))


@register_recipe
@training_options(batch_size=256, lr=3e-3, epochs=200)
class SelfSup(TrainingRecipe):
    """Contrastive pretraining on the task's unlabelled pool, then a head on the labels.

    Study file::

        [[recipe]]
        name = "simclr"
        kind = "selfsup"
        arch = "cnn"
        then = "linear-probe"     # or "finetune"
    """

    kind = "selfsup"

    arch: str = "cnn"
    arch_options: dict[str, Any] | None = None
    pretrain_epochs: int = 100
    temperature: float = 0.2
    then: str = "linear-probe"
    head_lr: float = 1e-2

    def __post_init__(self) -> None:
        if self.then not in ("linear-probe", "finetune"):
            raise ValueError(f"'then' must be linear-probe or finetune, got {self.then!r}")
        self.arch_options = checked_arch(self.arch, self.arch_options)

    def check_task(self, task, where: str) -> None:
        check_trainable(self.arch, self.arch_options, task, self.batch_size, where)

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        augment = Augmenter(task.modality, context.seed)
        torch.manual_seed(context.seed)
        options = arch_options_for(task, self.arch, self.arch_options, f"[[recipe]] '{name}'")
        model = zoo.build(self.arch, input_shape=task.input_shape, num_classes=task.num_classes, where=f"[[recipe]] '{name}'", **options)
        # Every non-test input, labels ignored: the labelled train and val examples too, so the set is the
        # same however the labels were drawn. In a canonical order it gives the same pretraining, and
        # studies that vary labels_per_class or draws pretrain once (cached in the run's shared folder).
        unlabelled = [np.asarray(task.train.x), np.asarray(task.val.x)] + ([np.asarray(task.pool.x)] if task.pool is not None else [])
        pool = np.concatenate(unlabelled)
        digests = [hashlib.sha1(row.tobytes()).hexdigest() for row in pool]
        pool = pool[np.argsort(digests, kind="stable")]
        key = hashlib.sha256(json.dumps([self.arch, self.arch_options, self.pretrain_epochs, self.batch_size, self.lr, self.temperature,
                                         context.seed, sorted(digests)], default=str).encode()).hexdigest()[:16]
        cache_dir = context.shared_dir or context.work_dir
        n_val = max(32, len(pool) // 10)
        order = np.random.default_rng(context.seed).permutation(len(pool))
        fake_labels = np.zeros(len(pool), dtype=np.int64)  # contrastive learning ignores labels
        pre_train, pre_val = Split(pool[order[n_val:]], fake_labels[order[n_val:]]), Split(pool[order[:n_val]], fake_labels[order[:n_val]])
        net = _Contrastive(model.body, model.head.in_features)

        def contrastive(m: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return nt_xent(m(augment(x)), m(augment(x)), self.temperature)

        val_augment = Augmenter(task.modality, context.seed + 1)

        @torch.no_grad()
        def validate(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
            m.eval()
            val_augment.rng = np.random.default_rng(context.seed + 1)  # the same views every epoch: comparable losses
            z1, z2 = m(val_augment(x)), m(val_augment(x))
            loss = nt_xent(z1, z2, self.temperature).item()
            sim = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T
            return loss, (sim.argmax(1) == torch.arange(len(x), device=x.device)).float().mean().item()  # view-matching accuracy

        # Contrastive validation loss is noisy epoch to epoch: train the full schedule, keep the best epoch.
        done = cache_dir / f"selfsup-{key}.pt"
        pre = _cached_pretraining(done, net)  # the same pretraining already ran in this run
        if pre is None:
            pre = context.fit(net, pre_train, pre_val, self.train_config(epochs=self.pretrain_epochs, patience=self.pretrain_epochs),
                              loss=contrastive, evaluate=validate, stage="pretrain", generators={"augment": augment.rng})
            with atomic_path(done) as tmp:
                torch.save({"weights": net.state_dict(), "summary": {k: pre[k] for k in ("epochs_run", "best_epoch", "train_seconds", "best_val_loss")}}, tmp)
        model.to(context.device)
        if self.then == "linear-probe":  # frozen encoder: features once, then the head on them
            feats = {s: forward_pass(model, task.split(s).x, batch_size=1024, device=context.device, logits=False, features=True).features.numpy()
                     for s in ("train", "val")}
            head = context.fit(model.head, Split(feats["train"], task.train.y), Split(feats["val"], task.val.y),
                               self.train_config(batch_size=32, lr=self.head_lr, patience=30), stage="probe")
        else:
            head = context.fit(model, task.train, task.val, self.train_config(batch_size=32, lr=self.lr / 3, patience=30), stage="finetune")
        arch = {"name": self.arch, "input_shape": list(task.input_shape), "num_classes": task.num_classes, **_jsonable(options)}
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest())
        training = {**head, "pretraining": {k: pre[k] for k in ("epochs_run", "best_epoch", "train_seconds", "best_val_loss")},
                    "pretrain_examples": len(pre_train), "train_seconds": head["train_seconds"] + pre["train_seconds"]}
        return Candidate(name, model.cpu().eval(), provenance, training=training)


def _cached_pretraining(path, net: nn.Module) -> dict | None:
    """Load a finished pretraining into ``net``; ``None`` when there is none, or the file is damaged (then it is redone)."""
    if not path.is_file():
        return None
    before = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(saved["weights"])
        return dict(saved["summary"])
    except Exception as error:  # noqa: BLE001 -- a truncated or foreign file raises many types
        net.load_state_dict(before)
        logging.getLogger("assay").warning("%s: damaged pretraining cache (%s); pretraining again", path, str(error).splitlines()[0][:120] if str(error) else type(error).__name__)
        return None
