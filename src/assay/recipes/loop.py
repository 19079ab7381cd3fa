"""The one training loop, and the callbacks that watch it.

``fit`` is seeded and device-agnostic, uses AdamW with a per-step cosine
schedule, and always keeps the weights of the best validation epoch.
Everything else a run needs is a ``Callback``: resuming from and writing a
checkpoint (``checkpoint.Checkpoint``), the progress bar, the study's
per-epoch hook, early stopping, and later pruning or a time budget. A
callback sees the ``Loop`` (model, optimiser, state) and may set
``loop.stop``. Recipes do not assemble these themselves:
``RecipeContext.fit`` supplies the device, seed, checkpoint file and
callbacks, so no recipe can run the loop with half of them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.task import Split
from ..errors import TrainingDiverged
from ..models.inputs import as_input
from .options import TrainConfig

log = logging.getLogger("assay")
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
EvaluateFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[float, float]]


@dataclass
class Loop:
    """What callbacks see of a run: they may read everything and set ``stop``.

    ``state`` is what a checkpoint saves and a resume restores: ``epoch``
    (epochs done), ``best_loss``, ``best_epoch``, ``bad_epochs`` (since the
    best), ``seconds`` and ``history`` (one row per epoch).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    config: TrainConfig
    device: torch.device
    desc: str
    fingerprint: str  # a checkpoint resumes only the same training (config, seed, data, architecture)
    best_weights: dict[str, torch.Tensor]
    state: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "bad_epochs": 0, "seconds": 0.0, "history": []})
    generators: dict[str, Any] = field(default_factory=dict)  # numpy Generators the loss draws from, checkpointed by name
    stop: bool = False
    finished: bool = False  # set when the loop ended without an error


class Callback:
    """A hook into ``fit``; every method does nothing unless overridden.

    Called in the order given: ``on_train_begin`` once (after the optimiser
    exists, before the first epoch), ``on_epoch_end`` after each epoch's
    bookkeeping, ``on_train_end`` once, also when an epoch raised.
    """

    def on_train_begin(self, loop: Loop) -> None:
        pass

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        pass

    def on_train_end(self, loop: Loop) -> None:
        pass


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without a better validation loss (the loop keeps the best weights either way)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_train_begin(self, loop: Loop) -> None:
        loop.stop = loop.stop or loop.state["bad_epochs"] >= self.patience  # a resumed run that had already stopped

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        loop.stop = loop.stop or loop.state["bad_epochs"] >= self.patience


class Progress(Callback):
    """A progress bar per run, or, without one, a log line when the run ends."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.bar = None

    def on_train_begin(self, loop: Loop) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=loop.config.epochs, initial=loop.state["epoch"], desc=loop.desc, unit="epoch", disable=not self.show, leave=True, dynamic_ncols=True)

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{row['loss']:.3f}", val_acc=f"{row['val_accuracy']:.3f}", best=loop.state["best_epoch"])

    def on_train_end(self, loop: Loop) -> None:
        if self.bar is not None:
            self.bar.close()
        if loop.finished and not self.show:  # no bar: one line for the stage, for logs
            s = loop.state
            log.info("%s: trained %d epochs (best %d, val loss %.4f) in %.1f s", loop.desc, s["epoch"], s["best_epoch"], s["best_loss"], s["seconds"])


class EpochHook(Callback):
    """The study's hook ``fn(epoch, row)`` after every epoch of every stage (tests interrupt runs with it)."""

    def __init__(self, fn: Callable[[int, dict], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        self.fn(row["epoch"], row)


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
    callbacks: Sequence[Callback] = (),
    loss_fn: LossFn | None = None,
    evaluate: EvaluateFn | None = None,
    param_groups: list[dict[str, Any]] | None = None,
    generators: dict[str, Any] | None = None,
    desc: str = "train",
) -> dict[str, Any]:
    """Train ``model`` in place and load its best validation weights. Recipes call ``RecipeContext.fit`` instead.

    Args:
        model: the network, already initialised with ``seed``.
        train, val: labelled splits; ``val`` drives the choice of the best epoch.
        config: optimiser and schedule settings.
        callbacks: run in this order (see ``Callback``); without
            ``EarlyStopping`` every epoch of ``config`` runs.
        loss_fn: ``fn(model, x, y, index) -> loss`` (default cross-entropy with
            ``config.label_smoothing``); ``index`` holds the batch's positions in ``train``.
        evaluate: ``fn(model, x_val, y_val) -> (loss, accuracy)`` (default:
            cross-entropy and accuracy); self-supervised stages pass their own.
        param_groups: AdamW parameter groups (e.g. layer-wise learning
            rates); default every parameter that requires a gradient.
        generators: numpy ``Generator``s the loss draws from (augmentations), by
            name; a checkpoint keeps their state, so a resumed run draws what
            an uninterrupted one would.
        desc: the run's name in the bar, logs and errors (``name`` or ``name (stage)``).

    Returns:
        A JSON-able summary: epochs_run, best_epoch, stopped_early,
        train_seconds, best_val_loss, history (one row per epoch).

    Raises:
        TrainingDiverged: a non-finite training or validation loss.
    """
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
    layout = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    fingerprint = hashlib.sha256(json.dumps([asdict(config), seed, train.digest(), layout, repr(model)]).encode()).hexdigest()[:16]
    loop = Loop(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), config, device, desc, fingerprint,
                best_weights=copy.deepcopy(model.state_dict()), generators=dict(generators or {}))
    try:
        for callback in callbacks:
            callback.on_train_begin(loop)
        while loop.state["epoch"] < config.epochs and not loop.stop:
            row = _epoch(loop, x, y, xv, yv, loss_fn, evaluate or _evaluate, seed)
            for callback in callbacks:
                callback.on_epoch_end(loop, row)
        loop.finished = True
    finally:
        for callback in callbacks:
            callback.on_train_end(loop)
    model.load_state_dict(loop.best_weights)
    model.eval()
    state = loop.state
    return {
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "stopped_early": state["epoch"] < config.epochs,
        "train_seconds": round(state["seconds"], 3),
        "best_val_loss": state["best_loss"],
        "history": state["history"],
    }


def _epoch(loop: Loop, x, y, xv, yv, loss_fn: LossFn, evaluate: EvaluateFn, seed: int) -> dict[str, Any]:
    """One epoch: train on every batch, validate, record the row and the best weights."""
    state, config, model = loop.state, loop.config, loop.model
    epoch, started = state["epoch"], time.perf_counter()
    model.train()
    running, seen = 0.0, 0
    for index in _loader_order(len(x), seed, epoch).split(config.batch_size):
        index = index.to(loop.device)
        loss = loss_fn(model, x[index], y[index], index)
        if not torch.isfinite(loss):
            raise _diverged(loop.desc, epoch + 1, config, f"training loss {loss.item()}")
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        loop.scheduler.step()
        running += loss.item() * len(index)
        seen += len(index)
    val_loss, val_acc = evaluate(model, xv, yv)
    if not math.isfinite(val_loss):
        raise _diverged(loop.desc, epoch + 1, config, f"validation loss {val_loss}")
    row = {"epoch": epoch + 1, "loss": running / seen, "val_loss": val_loss, "val_accuracy": val_acc}
    state["history"].append(row)
    if val_loss < state["best_loss"] - 1e-6:
        state.update(best_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
        loop.best_weights = copy.deepcopy(model.state_dict())
    else:
        state["bad_epochs"] += 1
    state["epoch"] = epoch + 1
    state["seconds"] += time.perf_counter() - started
    return row


def _diverged(desc: str, epoch: int, config: TrainConfig, what: str) -> TrainingDiverged:
    return TrainingDiverged(
        f"{desc}: training diverged in epoch {epoch} ({what}); lower lr (now {config.lr:g}) or check the inputs for extreme values",
        recipe=desc.split(" (", 1)[0], epoch=epoch,  # desc is the candidate's name, or "name (stage)" for a recipe's inner fit
    )
