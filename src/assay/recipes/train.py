"""The one supervised training loop, and the ``train`` recipe built on it.

``fit`` is what every recipe that trains reuses (distillation and fine-tuning
pass their own ``loss_fn``). It is seeded, device-agnostic, uses AdamW with a
per-step cosine schedule, stops early on validation loss, keeps the best
weights, and writes a checkpoint each epoch so an interrupted run resumes
where it stopped, losing at most one epoch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._io import atomic_path
from ..errors import TrainingDiverged
from ..data.task import Split
from ..models import zoo
from ..models.candidate import Candidate, Provenance
from ..models.inputs import as_input
from .base import Recipe, RecipeContext, check_trainable, register_recipe

log = logging.getLogger("assay")
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60  # upper bound; early stopping usually ends sooner
    batch_size: int = 64
    lr: float = 3e-3  # peak AdamW learning rate, reached after warm-up
    weight_decay: float = 0.05
    warmup_epochs: int = 1  # linear warm-up before the cosine decay
    patience: int = 10  # epochs without a better validation loss before stopping
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "patience"):
            if getattr(self, key) < 1:
                raise ValueError(f"'{key}' must be at least 1, got {getattr(self, key)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"'lr' must be a positive finite number, got {self.lr}")
        for key in ("warmup_epochs", "weight_decay"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"'{key}' must be at least 0, got {getattr(self, key)}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"'label_smoothing' must be in [0, 1), got {self.label_smoothing}")


def _loader_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    # A generator seeded per epoch: the order does not depend on RNG state,
    # so a resumed run shuffles exactly as an uninterrupted one.
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        logits = model(x[i : i + batch])
        loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    return loss / len(x), correct / len(x)


def _cross_entropy(smoothing: float) -> LossFn:
    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y, label_smoothing=smoothing)

    return loss


def fit(
    model: nn.Module,
    train: Split,
    val: Split,
    config: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    checkpoint: Path | None = None,
    loss_fn: LossFn | None = None,
    progress: bool = True,
    desc: str = "train",
    on_epoch_end: Callable[[int, dict], None] | None = None,
    param_groups: list[dict[str, Any]] | None = None,
    evaluate: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place and load its best validation weights.

    Args:
        model: the network, already initialised with ``seed``.
        train, val: labelled splits; ``val`` drives early stopping.
        config: optimiser and schedule settings.
        checkpoint: a file to resume from and write each epoch, or ``None``.
        loss_fn: ``fn(model, x, y, index) -> loss`` (default cross-entropy);
            ``index`` holds the batch's positions in ``train``.
        on_epoch_end: ``fn(epoch, row)`` after each epoch's checkpoint.
        param_groups: AdamW parameter groups (e.g. layer-wise learning
            rates); default every parameter that requires a gradient.
        evaluate: ``fn(model, x_val, y_val) -> (loss, accuracy)`` driving
            early stopping (default: cross-entropy and accuracy); self-supervised
            pretraining passes its own.

    Returns:
        A JSON-able summary: epochs_run, best_epoch, stopped_early,
        train_seconds, history (one row per epoch).
    """
    from tqdm.auto import tqdm

    loss_fn = loss_fn or _cross_entropy(config.label_smoothing)
    model.to(device)
    # Training holds its splits in memory (a lazy dataset is decoded once here).
    x = as_input(train.x, device)
    y = torch.as_tensor(train.y, dtype=torch.long, device=device)
    xv = as_input(val.x, device)
    yv = torch.as_tensor(val.y, dtype=torch.long, device=device)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "bad_epochs": 0, "seconds": 0.0, "history": []}
    best_weights = copy.deepcopy(model.state_dict())
    # A checkpoint resumes only the same training: same config, seed, data and architecture.
    layout = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    fingerprint = hashlib.sha256(json.dumps([asdict(config), seed, train.digest(), layout, repr(model)]).encode()).hexdigest()[:16]

    if checkpoint is not None and checkpoint.is_file():
        resumed = _resume(checkpoint, fingerprint, device, model, optimizer, scheduler)
        if resumed is not None:
            best_weights, state = resumed

    bar = tqdm(total=config.epochs, initial=state["epoch"], desc=desc, unit="epoch", disable=not progress, leave=True, dynamic_ncols=True)
    try:
        while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
            epoch, started = state["epoch"], time.perf_counter()
            model.train()
            running, seen = 0.0, 0
            for index in _loader_order(len(x), seed, epoch).split(config.batch_size):
                index = index.to(device)
                loss = loss_fn(model, x[index], y[index], index)
                if not torch.isfinite(loss):
                    raise _diverged(desc, epoch + 1, config, f"training loss {loss.item()}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                running += loss.item() * len(index)
                seen += len(index)
            val_loss, val_acc = (evaluate or _evaluate)(model, xv, yv)
            if not math.isfinite(val_loss):
                raise _diverged(desc, epoch + 1, config, f"validation loss {val_loss}")
            row = {"epoch": epoch + 1, "loss": running / seen, "val_loss": val_loss, "val_accuracy": val_acc}
            state["history"].append(row)
            if val_loss < state["best_loss"] - 1e-6:
                state.update(best_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
                best_weights = copy.deepcopy(model.state_dict())
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            state["seconds"] += time.perf_counter() - started
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, scheduler, best_weights, state, fingerprint, device)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", val_acc=f"{val_acc:.3f}", best=state["best_epoch"])
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    finally:
        bar.close()
    model.load_state_dict(best_weights)
    model.eval()
    if not progress:  # no bar: one line for the stage, for logs
        log.info("%s: trained %d epochs (best %d, val loss %.4f) in %.1f s", desc, state["epoch"], state["best_epoch"], state["best_loss"], state["seconds"])
    return {
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "stopped_early": state["epoch"] < config.epochs,
        "train_seconds": round(state["seconds"], 3),
        "best_val_loss": state["best_loss"],
        "history": state["history"],
    }


def _diverged(desc: str, epoch: int, config: TrainConfig, what: str) -> TrainingDiverged:
    return TrainingDiverged(
        f"{desc}: training diverged in epoch {epoch} ({what}); lower lr (now {config.lr:g}) or check the inputs for extreme values",
        recipe=desc.split(" (", 1)[0], epoch=epoch,  # desc is the candidate's name, or "name (stage)" for a recipe's inner fit
    )


def _resume(checkpoint: Path, fingerprint: str, device: torch.device, model, optimizer, scheduler) -> tuple[dict, dict] | None:
    """Load a checkpoint of this same training into model, optimiser and scheduler; ``None`` when there is none to use.

    A damaged file (truncated, garbage, another program's) is not trusted: it is
    named in a warning and training starts from scratch, never a traceback.
    """
    before = copy.deepcopy((model.state_dict(), optimizer.state_dict(), scheduler.state_dict()))
    try:
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
            return None  # another training's checkpoint (the settings changed): start again
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        best_weights, state = saved["best_weights"], saved["state"]
        if not isinstance(state, dict) or not {"epoch", "best_loss", "best_epoch", "bad_epochs", "seconds", "history"} <= set(state):
            raise KeyError("state")
        torch.set_rng_state(saved["rng"])
        if device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        return best_weights, state
    except Exception as error:  # noqa: BLE001 -- torch.load and load_state_dict raise many types for a damaged file
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        log.warning("%s: damaged checkpoint (%s); training restarts from scratch", checkpoint, reason)
        model.load_state_dict(before[0])  # undo a partial load
        optimizer.load_state_dict(before[1])
        scheduler.load_state_dict(before[2])
        return None


def _save_checkpoint(path: Path, model, optimizer, scheduler, best_weights, state, fingerprint, device) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best_weights": best_weights,
        "state": state,
        "fingerprint": fingerprint,
        "rng": torch.get_rng_state(),
    }
    if device.type == "cuda":
        payload["cuda_rng"] = torch.cuda.get_rng_state(device)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


@register_recipe
class Train(Recipe):
    """Train an architecture from the zoo from scratch.

    Study file::

        [[recipe]]
        name = "cnn"
        kind = "train"
        arch = "cnn"
        arch_options = { channels = [32, 64, 128] }
        epochs = 60
    """

    kind = "train"

    def __init__(
        self,
        *,
        arch: str = "mlp",
        arch_options: dict[str, Any] | None = None,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        warmup_epochs: int = 1,
        patience: int = 10,
        label_smoothing: float = 0.0,
    ) -> None:
        if arch not in zoo.ARCHITECTURES:
            raise ValueError(zoo.unknown_arch(arch))
        zoo.check_arch(arch, dict(arch_options or {}), "arch_options")
        self.arch = arch
        self.arch_options = dict(arch_options or {})
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.weight_decay, self.warmup_epochs, self.patience = weight_decay, warmup_epochs, patience
        self.label_smoothing = label_smoothing
        self.config = TrainConfig(epochs, batch_size, lr, weight_decay, warmup_epochs, patience, label_smoothing)

    def check_task(self, task, where: str) -> None:
        check_trainable(self.arch, self.arch_options, task, self.batch_size, where)

    def make(self, name: str, context: RecipeContext) -> Candidate:
        task = context.task
        torch.manual_seed(context.seed)
        np.random.seed(context.seed % 2**32)
        options = arch_options_for(task, self.arch, self.arch_options, f"[[recipe]] '{name}'")
        model = zoo.build(self.arch, input_shape=task.input_shape, num_classes=task.num_classes, where=f"[[recipe]] '{name}'", **options)
        summary = fit(
            model,
            task.train,
            task.val,
            self.config,
            device=context.device,
            seed=context.seed,
            checkpoint=context.work_dir / "checkpoint.pt",
            progress=context.progress,
            desc=name,
            on_epoch_end=context.on_epoch_end,
        )
        arch = {"name": self.arch, "input_shape": list(task.input_shape), "num_classes": task.num_classes, **_jsonable(options)}
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest())
        return Candidate(name, model.cpu(), provenance, training=summary)


def arch_options_for(task, arch: str, options: dict[str, Any], where: str) -> dict[str, Any]:
    """Architecture options completed from the task: token models size their embedding from its tokenizer."""
    options = dict(options)
    if task.modality == "text":
        if arch not in zoo.TOKEN_ARCHITECTURES:
            from ..errors import SpecError

            raise SpecError(f"{where}: arch '{arch}' cannot read text; use {' or '.join(zoo.TOKEN_ARCHITECTURES)}, or kind = \"transfer\"")
        options.setdefault("vocab_size", task.pipeline.vocab_size)
    return options


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in options.items()}
