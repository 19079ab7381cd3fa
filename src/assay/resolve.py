"""Names in a study resolved against the loaded task, before anything trains.

``spec.py`` checks what the study file alone can tell (keys, types, ranges,
gates against the checks that run). What only the data can tell is checked
here, once the task is loaded and before the run folder is made:

* option values that name something of the task, by the option's name,
  wherever they appear: ``group`` (a group attribute), ``positive`` (a class),
  ``reference`` (a recipe of the study);
* a recipe's ``labels_per_class`` against the smallest class (the
  ``labels_per_class`` transform's ``check_task``);
* each recipe's own ``check_task`` (the architecture reads these inputs, the
  training fits in memory, a model file to load is sound).

Every failure is one line naming the input and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import SpecError, did_you_mean

if TYPE_CHECKING:
    from .data.task import Task
    from .spec import StudySpec


def _group(value: Any, task: Task, spec: StudySpec, where: str) -> None:
    groups = sorted(task.test.groups)
    if not groups:
        raise SpecError(f"{where}: group '{value}' is not in the task, which has no group attribute; {task.groups_hint()}")
    if value not in groups:
        raise SpecError(f"{where}: group '{value}' is not a group attribute of the task{did_you_mean(value, groups)}; use one of: {', '.join(groups)}")


def _class(value: Any, task: Task, spec: StudySpec, where: str) -> None:
    if value not in task.class_names:
        raise SpecError(f"{where}: positive class '{value}' is not a class of the task{did_you_mean(str(value), task.class_names)}; "
                        f"use one of: {', '.join(task.class_names)}")


def _recipe(value: Any, task: Task, spec: StudySpec, where: str) -> None:
    names = [r.name for r in spec.recipes]
    if value not in names:
        raise SpecError(f"{where}: reference '{value}' is not a recipe of the study{did_you_mean(str(value), names)}; use one of: {', '.join(names)}")


# An option's name says what it names; the same resolver serves every check that uses it.
RESOLVERS: Mapping[str, Callable[[Any, "Task", "StudySpec", str], None]] = {
    "group": _group,
    "positive": _class,
    "reference": _recipe,
}


def validate_against_task(spec: StudySpec, task: Task) -> None:
    """Refuse, before any training, what the study asks of this task and the task cannot give.

    Raises:
        SpecError, DataError, ModelError: one line naming the input and the fix.
    """
    from .data.transforms import LabelsPerClass
    from .recipes import make_recipe

    where = str(spec.path or "study")
    for name, options in spec.checks.items():
        for key, value in options.items():
            if key in RESOLVERS and value is not None:
                RESOLVERS[key](value, task, spec, f"{where} [checks.{name}]")
    for recipe_spec in spec.recipes:
        label = f"{where} [[recipe]] '{recipe_spec.name}'"
        for key, value in recipe_spec.options.items():
            if key in RESOLVERS and value is not None:
                RESOLVERS[key](value, task, spec, label)
        if recipe_spec.labels_per_class:  # the transform the study applies to this recipe's copy of the task
            LabelsPerClass(labels_per_class=recipe_spec.labels_per_class, draw=recipe_spec.draw).check_task(task, label)
        make_recipe(recipe_spec.kind, recipe_spec.options, label).check_task(task, label)
