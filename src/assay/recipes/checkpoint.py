"""Checkpoint and resume: the training loop's state written each epoch, read back on the next run.

A checkpoint holds the model, optimiser and scheduler, the best weights, the
loop's state and the RNG states (torch's, and the numpy generators the loss
draws augmentations from), so an interrupted run resumes where it
stopped, losing at most one epoch, and ends with the very weights an
uninterrupted run gives. It is our own file, loaded with
``torch.load(weights_only=True)``; one that belongs to another training (its
fingerprint differs) is ignored, and a damaged one is named in a warning and
training starts from scratch, never a traceback.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch

from .._io import atomic_path
from .loop import Callback, Loop

log = logging.getLogger("assay")
_STATE_KEYS = {"epoch", "best_loss", "best_epoch", "bad_epochs", "seconds", "history"}


class Checkpoint(Callback):
    """Resume from ``path`` when it holds this same training; write it after every epoch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_begin(self, loop: Loop) -> None:
        if self.path.is_file():
            resumed = _resume(self.path, loop)
            if resumed is not None:
                loop.best_weights, loop.state = resumed

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        payload = {
            "model": loop.model.state_dict(),
            "optimizer": loop.optimizer.state_dict(),
            "scheduler": loop.scheduler.state_dict(),
            "best_weights": loop.best_weights,
            "state": loop.state,
            "fingerprint": loop.fingerprint,
            "rng": torch.get_rng_state(),
            "generators": {name: g.bit_generator.state for name, g in loop.generators.items()},
        }
        if loop.device.type == "cuda":
            payload["cuda_rng"] = torch.cuda.get_rng_state(loop.device)
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)


def _resume(path: Path, loop: Loop) -> tuple[dict, dict] | None:
    """Load a checkpoint of this same training into model, optimiser and scheduler; ``None`` when there is none to use."""
    model, optimizer, scheduler, device = loop.model, loop.optimizer, loop.scheduler, loop.device
    before = copy.deepcopy((model.state_dict(), optimizer.state_dict(), scheduler.state_dict()))
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(saved, dict) or saved.get("fingerprint") != loop.fingerprint:
            return None  # another training's checkpoint (the settings changed): start again
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        best_weights, state = saved["best_weights"], saved["state"]
        if not isinstance(state, dict) or not _STATE_KEYS <= set(state):
            raise KeyError("state")
        torch.set_rng_state(saved["rng"])
        for name, g in loop.generators.items():
            g.bit_generator.state = saved["generators"][name]
        if device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        return best_weights, state
    except Exception as error:  # noqa: BLE001 -- torch.load and load_state_dict raise many types for a damaged file
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        log.warning("%s: damaged checkpoint (%s); training restarts from scratch", path, reason)
        model.load_state_dict(before[0])  # undo a partial load
        optimizer.load_state_dict(before[1])
        scheduler.load_state_dict(before[2])
        return None
