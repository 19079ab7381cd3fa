"""Recipe: anything that makes a Candidate, and the registry of recipes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from .._options import construct, option_names
from ..data.task import Split, Task
from ..errors import SpecError, did_you_mean
from ..models.candidate import Candidate, Provenance, library_versions


@dataclass
class RecipeContext:
    """What a recipe may use.

    Attributes:
        task: the study's task.
        work_dir: a folder of its own for checkpoints (kept across resumes).
        device: where to train.
        seed: the study's seed.
        candidates: candidates made so far, by name (parents come from here).
        progress: show a progress bar.
        on_epoch_end: called as ``fn(epoch, history_row)`` after each epoch
            of every training stage; tests use it to interrupt a run.
        shared_dir: a folder every recipe of the run shares (e.g. cached encoder features).
        name: the candidate's name, for progress and errors (default: the
            work folder's name, which the study names after the candidate).
        callbacks: more training-loop callbacks for every stage (a pruner, a
            time budget), run after the study's hook.
    """

    task: Task
    work_dir: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    candidates: Mapping[str, Candidate] = field(default_factory=dict)
    progress: bool = True
    on_epoch_end: Callable[[int, dict], None] | None = None
    shared_dir: Path | None = None
    name: str = ""
    callbacks: tuple[Any, ...] = ()

    def fit(
        self,
        model: torch.nn.Module,
        train: Split,
        val: Split,
        config: Any,
        *,
        loss: Callable[..., torch.Tensor] | None = None,
        evaluate: Callable[..., tuple[float, float]] | None = None,
        stage: str | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        seed: int | None = None,
        generators: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train ``model`` through the one loop with everything the study supplies; the recipe names only what is its own.

        The context adds the device, the seed, a checkpoint file under
        ``work_dir`` (``checkpoint.pt``, or ``<stage>.pt`` for an inner stage,
        so each stage resumes on its own), the progress bar, the study's
        per-epoch hook, any extra callbacks, and early stopping after
        ``config.patience`` epochs without a better validation loss.

        Args:
            config: a ``TrainConfig`` (see ``TrainingRecipe.train_config``).
            loss: ``fn(model, x, y, index) -> loss``; default cross-entropy.
            evaluate: ``fn(model, x_val, y_val) -> (loss, accuracy)``; default cross-entropy and accuracy.
            stage: an inner stage's name (``pretrain``, ``pairs``, ``head``, ``step2``).
            param_groups: AdamW groups (layer-wise learning rates).
            seed: the stage's shuffling seed when it is not the study's (a repeated stage, e.g. prune's steps).
            generators: numpy Generators the loss draws from, by name, kept in the checkpoint (selfsup's augmentations).

        Returns:
            The loop's summary (epochs_run, best_epoch, history ...).
        """
        from .checkpoint import Checkpoint
        from .loop import EarlyStopping, EpochHook, Progress, fit

        name = self.name or self.work_dir.name
        hook = [EpochHook(self.on_epoch_end)] if self.on_epoch_end is not None else []
        callbacks = [Checkpoint(self.work_dir / f"{stage or 'checkpoint'}.pt"), Progress(self.progress), *hook, *self.callbacks,
                     EarlyStopping(config.patience)]
        return fit(model, train, val, config, device=self.device, seed=self.seed if seed is None else seed, callbacks=callbacks,
                   loss_fn=loss, evaluate=evaluate, param_groups=param_groups, generators=generators, desc=name if stage is None else f"{name} ({stage})")

    def parent(self, name: str, where: str) -> Candidate:
        if name not in self.candidates:
            raise SpecError(f"{where}: parent '{name}' is not a candidate made before this recipe{did_you_mean(name, self.candidates)}; list the parent's recipe first")
        return self.candidates[name]

    def float_parent(self, name: str, where: str, allow: tuple[str, ...] = ()) -> Candidate:
        """The parent, refused when it is already compressed (int8, half precision, a graph), unless its transforms are in ``allow``."""
        parent = self.parent(name, where)
        transforms = parent.provenance.transforms
        if transforms and tuple(transforms) != allow:
            raise SpecError(f"{where}: parent '{name}' is already compressed ({', '.join(transforms)}); "
                            f"name its float parent ({parent.provenance.parent or 'the model it came from'}) instead")
        return parent


def derived_provenance(parent: Candidate, recipe: Recipe, *, transforms: tuple[str, ...] = (), arch: dict[str, Any] | None = None) -> Provenance:
    """Provenance of a candidate made from ``parent`` by ``recipe``: the parent recorded, its transforms extended.

    A new ``arch`` (a student, a pruned shape) is a fresh float model: the parent's transforms do not carry over.
    """
    inherited = parent.provenance.transforms if arch is None else ()
    return replace(
        parent.provenance,
        recipe=recipe.kind,
        config=recipe.params(),
        arch=arch if arch is not None else parent.provenance.arch,
        parent=parent.name,
        parent_id=parent.id,
        transforms=(*inherited, *transforms),
        versions=library_versions(),
    )


class Recipe:
    """Base class: constructors store keyword-only options; ``make`` builds."""

    kind: ClassVar[str]

    def make(self, name: str, context: RecipeContext) -> Candidate:
        raise NotImplementedError  # each registered recipe overrides it

    def check_task(self, task: Task, where: str) -> None:
        """Refuse, before anything trains, what cannot work on this task (a wrong input shape, a model too large).

        Called once per recipe when the task is loaded; the default accepts everything.

        Raises:
            SpecError, ModelError, DataError: one line naming the recipe and the fix.
        """

    def params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in option_names(type(self))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


RECIPES: dict[str, type[Recipe]] = {}


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator adding a recipe to the registry under ``cls.kind``."""
    RECIPES[cls.kind] = cls
    return cls


def make_recipe(kind: str, options: Mapping[str, Any], where: str) -> Recipe:
    """Build a registered recipe from study-file options."""
    from . import load_all

    load_all()
    if kind not in RECIPES:
        raise SpecError(f"{where}: unknown recipe kind '{kind}'{did_you_mean(kind, RECIPES)}; known: {', '.join(sorted(RECIPES))}")
    return construct(RECIPES[kind], options, where)


def check_trainable(arch: str, arch_options: Mapping[str, Any], task: Task, batch_size: int, where: str) -> None:
    """Refuse an architecture that cannot read the task's inputs, or whose training would not fit in memory.

    Raises:
        SpecError: naming the recipe, what was found and the fix.
    """
    from ..data.memory import available_bytes, size_text
    from ..models import zoo
    from .train import arch_options_for

    options = arch_options_for(task, arch, dict(arch_options), where)
    try:
        need = zoo.training_bytes(arch, input_shape=task.input_shape, num_classes=task.num_classes, batch_size=min(batch_size, len(task.train)), where=where, **options)
    except SpecError as error:  # the architecture cannot read these inputs: say which recipe asked
        text = str(error)
        raise SpecError(text if text.startswith(where) else f"{where}: {text}") from None
    if need > available_bytes():  # the estimate already counts gradients and optimiser state: hold it to all that is free
        raise SpecError(f"{where}: training arch '{arch}' on inputs of shape {tuple(task.input_shape)} needs about {size_text(need)} "
                        f"(this machine has {size_text(available_bytes())} available); make the model or the inputs smaller, or lower batch_size")
