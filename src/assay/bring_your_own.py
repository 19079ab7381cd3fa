"""``assay.judge``: the model you already have, on the data you already have, in five lines.

::

    import assay
    task = assay.Task.from_frame(train_df, test_df, label="denied")
    result = assay.judge({"mine": my_pipeline, "net": my_module}, task,
                         recipes=[{"name": "gbt", "kind": "sklearn", "estimator": "gradient_boosting"}])
    print(result.decision.chosen, result.report)

It writes a study file from its arguments and runs it like any other
(``Study``): the same checks, the trivial baseline, the policy read on the
validation split, the report and model card, a row in the run index. The
models are judged as they are and given back in the mode and on the device
they came; the study file in the run folder names them and their digests,
so the same call again resumes that run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .data.task import Task
from ._options import toml_text
from .errors import SpecError
from .spec import parse_study
from .study import Study, StudyResult

# The battery a judged model gets when ``checks`` is not given; fairness joins when the task has groups.
DEFAULT_CHECKS = ("performance", "calibration", "robustness", "ood", "slices", "comparison", "efficiency")
DEFAULT_POLICY = {"gates": ["beats_baseline"], "objectives": ["maximise accuracy"]}


def judge(
    models: Any,
    task: Task,
    *,
    checks: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    policy: Mapping[str, Any] | None = None,
    recipes: Iterable[Mapping[str, Any]] = (),
    out: Path | str = "runs",
    name: str | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    outputs: str | None = None,
    device: str = "auto",
    progress: bool = True,
    new: bool = False,
    quick: bool = False,
) -> StudyResult:
    """Judge ``models`` on ``task`` with assay's checks, beside any ``recipes``, and decide with ``policy``.

    Args:
        models: one model, or a dict of name -> model. A model is a
            ``torch.nn.Module`` returning logits (or probabilities, with
            ``outputs="probabilities"``), an object with ``predict_proba``
            (a scikit-learn estimator or pipeline; a table task gives it raw
            rows as a DataFrame, a text task the list of strings), or a callable from a batch to probabilities.
        task: the data (``Task.from_arrays``, ``Task.from_frame``,
            ``Task.from_dataset``, ``load_builtin`` ...).
        checks: check names, or name -> options (default: ``DEFAULT_CHECKS``,
            plus ``fairness`` on the task's first group attribute).
        policy: ``{"gates": [...], "objectives": [...], "select_on": "val"}``
            (default: must beat the majority-class baseline; most accurate wins).
        recipes: study-file recipe tables to make and judge beside the models,
            e.g. ``{"name": "mlp", "kind": "train", "arch": "mlp"}``.
        out: the runs folder. name: the study's name (default ``judge-<task>``).
        seed, n_boot: the study's seed and bootstrap resamples.
        outputs: what the models return (see ``models/foreign.py``).
        device, progress, new, quick: as for ``Study``.

    Returns:
        The ``StudyResult``: evidence, decision, report and model card paths.

    Raises:
        SpecError, DataError, ModelError: one line naming the input and the fix;
        nothing is written for a refused call.
    """
    if not isinstance(task, Task):
        raise SpecError(f"task: got {type(task).__name__}; give an assay Task, e.g. assay.Task.from_arrays(x_train, y_train, x_test, y_test)")
    brought = dict(models) if isinstance(models, Mapping) else {"model": models}
    if not brought and not recipes:
        raise SpecError("models: nothing to judge; give a model, a dict of name -> model, or recipes")
    text = study_text(task, brought, checks=checks, policy=policy, recipes=list(recipes), name=name, seed=seed, n_boot=n_boot)
    spec = parse_study(text, brought=tuple(brought))
    study = Study(spec, out=out, device=device, seed=seed, progress=progress, new=new, quick=quick, task=task, candidates=brought, outputs=outputs)
    return study.run()


def study_text(task: Task, brought: Mapping[str, Any], *, checks=None, policy=None, recipes: list[Mapping[str, Any]] = (),
               name: str | None = None, seed: int = 0, n_boot: int = 1000) -> str:
    """The study file ``judge`` runs: what the run folder keeps, to read and to re-run with the same models."""
    if checks is None:
        checks = {c: {} for c in DEFAULT_CHECKS}
        groups = list(task.test.groups)
        if groups:
            checks["fairness"] = {"group": groups[0]}
    elif not isinstance(checks, Mapping):
        if isinstance(checks, str):
            raise SpecError(f"checks: got the string {checks!r}; give a list of check names, e.g. checks=[\"performance\", \"calibration\"]")
        checks = {c: {} for c in checks}
    lines = [f"name = {_toml(name or _name(task))}", f"seed = {seed}",
             f"description = {_toml('Judged with assay.judge: ' + ', '.join(brought) if brought else 'assay.judge')}",
             "", "[task]", f"in_memory = {_toml(task.name)}  # the data was given in code"]
    for table in recipes:
        lines += ["", "[[recipe]]", *(f"{k} = {_toml(v)}" for k, v in dict(table).items())]
    lines += ["", "[checks]", f"run = {_toml(list(checks))}", f"n_boot = {n_boot}"]
    for check, options in checks.items():
        if options:
            lines += ["", f"[checks.{check}]", *(f"{k} = {_toml(v)}" for k, v in dict(options).items())]
    lines += ["", "[policy]", *(f"{k} = {_toml(v)}" for k, v in dict(DEFAULT_POLICY if policy is None else policy).items())]
    return "\n".join(lines) + "\n"


def _name(task: Task) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in task.name).strip("-.") or "task"
    return f"judge-{cleaned}"


def _toml(value: Any) -> str:
    """A value of the study file ``judge`` writes; types TOML cannot hold are refused in one line."""
    def writable(v: Any) -> bool:
        if isinstance(v, Mapping):
            return all(writable(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return all(writable(x) for x in v)
        return isinstance(v, (bool, int, float, str))

    if not writable(value):
        raise SpecError(f"{value!r}: cannot go in a study file; give strings, numbers, booleans, lists or dicts")
    return toml_text(value)
