"""The study file: a TOML description of task, recipes, checks and policy.

::

    name = "digits"
    seed = 0

    [task]
    builtin = "digits"

    [[recipe]]
    name = "cnn"
    kind = "train"
    arch = "cnn"

    [checks]
    run = ["performance", "calibration", "efficiency"]

    [policy]
    gates = ["accuracy >= 0.95"]
    objectives = ["maximise accuracy", "minimise latency_p50_ms"]

Everything is validated when the file is read, before any training starts,
with errors that name the key and suggest the fix. Paths are relative to the
study file, and so is the file of a code reference (``arch = "models.py:make_net"``);
a module reference (``"package.module:make_net"``) and a zoo name are not paths
(``_options.resolve_paths``).
"""

from __future__ import annotations

import hashlib
from importlib import import_module
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._options import LIMITS, check_limit, option_names, resolve_paths, toml_text
from .errors import SpecError, did_you_mean

_TOP = ("name", "seed", "description", "task", "recipe", "checks", "policy")
_CHECKS_KEYS = ("run", "n_boot")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class RecipeSpec:
    name: str
    kind: str
    options: Mapping[str, Any]
    labels_per_class: int | None = None  # train this recipe on k labels per class (the test split is the task's)
    draw: int = 0  # which labelled subset (1..draws) when the recipe is repeated over draws; 0 = the only one


@dataclass(frozen=True)
class StudySpec:
    """A validated study file.

    Attributes:
        path: the file (``None`` for a study built in code).
        text: its text, stored with each run.
        task: the ``[task]`` table.
        recipes: in order; a parent is always listed before its children.
        checks: check name -> options.
        policy: the parsed ``[policy]``.
    """

    path: Path | None
    text: str
    name: str
    seed: int
    task: Mapping[str, Any]
    recipes: tuple[RecipeSpec, ...]
    checks: Mapping[str, Mapping[str, Any]]
    policy: Any  # select.Policy
    n_boot: int = 1000
    description: str = ""
    base_dir: Path = field(default_factory=Path.cwd)

    quick: bool = False
    brought: tuple[str, ...] = ()  # candidates given in code, judged beside the recipes' (``parse_study``)

    def config_hash(self, seed: int) -> str:
        """Identifies 'the same study': its text, effective seed and mode (a quick run never resumes a full one)."""
        return hashlib.sha256(f"{self.text}\n#seed={seed}{'#quick' if self.quick else ''}".encode()).hexdigest()[:16]

    def quick_version(self) -> StudySpec:
        """The same study made small, to try it end to end in a minute or two (``assay run --quick``).

        Every split keeps at most ``QUICK_ROWS`` examples (``[task] max_rows``,
        stratified), each recipe trains at most ``QUICK_OPTIONS`` (1 epoch,
        1 pruning step ...), a recipe repeated over draws keeps 2 of them,
        robustness measures one severity, efficiency times a few calls, and
        intervals use at most 200 bootstrap resamples. Nothing else changes:
        the same checks, policy and report, which says the run was quick.
        """
        from .recipes import RECIPES, load_all

        load_all()
        recipes = []
        for r in self.recipes:
            if r.draw > QUICK_DRAWS:
                continue
            accepted = option_names(RECIPES[r.kind])
            capped = {k: v if r.options.get(k) is None else min(v, r.options[k]) for k, v in QUICK_OPTIONS.items() if k in accepted}
            recipes.append(replace(r, options={**r.options, **capped}))
        task = {**self.task, "max_rows": min(QUICK_ROWS, self.task.get("max_rows", QUICK_ROWS))}
        checks = dict(self.checks)
        if "robustness" in checks:  # one severity, the middle of those asked: a forward pass per corruption, not five
            asked = sorted(checks["robustness"].get("severities", (1, 2, 3, 4, 5)))
            checks["robustness"] = {**checks["robustness"], "severities": [asked[len(asked) // 2]]}
        if "efficiency" in checks:  # a few timed calls on small batches: a pretrained encoder otherwise takes half a minute
            checks["efficiency"] = {**checks["efficiency"], **QUICK_TIMING}
        return replace(self, task=task, recipes=tuple(recipes), checks=checks, n_boot=min(self.n_boot, QUICK_BOOT), quick=True)


QUICK_ROWS, QUICK_DRAWS, QUICK_BOOT = 300, 2, 200
QUICK_TIMING = {"repeats": 10, "warmup": 1, "batch_size": 32, "batch_repeats": 1}
QUICK_OPTIONS = {"epochs": 1, "pretrain_epochs": 1, "head_epochs": 20, "steps": 1, "epochs_per_step": 1, "pairs_per_example": 4}


def load_study(path: Path | str, *, brought: tuple[str, ...] = ()) -> StudySpec:
    """Read and validate a study file.

    Raises:
        SpecError: a one-line message naming the file, the key and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: study file not found; check the path (examples/digits.toml is a template)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not a text file (byte {error.start} is not UTF-8); give a TOML study file") from None
    return parse_study(text, path=path, brought=brought)


def parse_study(text: str, *, path: Path | None = None, brought: tuple[str, ...] = ()) -> StudySpec:
    """Validate study-file text (see ``load_study``).

    ``brought`` names the candidates given in code (``Study(candidates=...)``,
    ``assay.judge``): with them a study may have no ``[[recipe]]``, and no
    recipe may take one of their names.
    """
    where = str(path) if path else "study"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{where}: not valid TOML ({error}); fix the syntax there") from None
    for key in data:
        if key not in _TOP:
            raise SpecError(f"{where}: unknown key '{key}'{did_you_mean(key, _TOP)}; top-level keys are {', '.join(_TOP)}")

    name = data.get("name", path.stem if path else "study")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"{where}: name {name!r} must be letters, digits, '-', '_' or '.'")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SpecError(f"{where}: 'seed' must be an integer, got {toml_text(seed)}; e.g. seed = 0")
    check_limit("seed", seed, LIMITS["seed"], where, "; e.g. seed = 0")

    task = data.get("task")
    if not isinstance(task, dict) or not task:
        raise SpecError(f"{where}: missing [task]; add e.g. [task] builtin = \"digits\" or path = \"data.csv\"")

    base_dir = path.parent if path else Path.cwd()
    recipes = _recipes(data.get("recipe"), where, base_dir) if data.get("recipe") is not None or not brought else ()
    taken = [r.name for r in recipes if r.name in brought]
    if taken:
        raise SpecError(f"{where} [[recipe]] '{taken[0]}': the name is also a candidate given in code; give one of them another name")
    checks, n_boot = _checks(data.get("checks", {}), where)

    from .checks.base import known_metrics
    from .select import Policy

    policy_table = data.get("policy", {})
    if not isinstance(policy_table, dict):
        raise SpecError(f"{where}: [policy] must be a table with gates and objectives")
    policy = Policy.parse(policy_table, known_metrics(), where=f"{where} [policy]")
    _policy_metrics_measured(policy, checks, f"{where} [policy]")
    return StudySpec(
        path=path,
        text=text,
        name=name,
        seed=seed,
        task=task,
        recipes=recipes,
        checks=checks,
        policy=policy,
        n_boot=n_boot,
        description=str(data.get("description", "")),
        base_dir=base_dir,
        brought=tuple(brought),
    )


def _policy_metrics_measured(policy: Any, checks: Mapping[str, Any], where: str) -> None:
    """Every metric a gate or objective reads must come from a check the study runs (or one every study runs)."""
    from .checks import load_all

    registry = load_all()
    always = getattr(import_module("assay.checks.base"), "ALWAYS_RUN", ())
    running = [*always, *checks]
    measured = {m for name in running if name in registry for m in registry[name].metrics}
    rules = [(g.metric, f"gate '{g}'") for g in policy.gates] + [(o.metric, f"objective '{o}'") for o in policy.objectives]
    for metric, rule in rules:
        if metric not in measured:
            makers = sorted(name for name, cls in registry.items() if metric in cls.metrics)
            fix = f"add {' or '.join(repr(m) for m in makers)} to [checks] run" if makers else "remove it"
            raise SpecError(f"{where}: {rule} reads '{metric}', which no check in [checks] run produces; {fix}")


_FLOAT_PARENT_ONLY = ("quantize", "prune", "export")  # kinds that change a float model's weights or structure


def _recipes(tables: object, where: str, base_dir: Path) -> tuple[RecipeSpec, ...]:
    from .recipes import RECIPES, make_recipe

    if not isinstance(tables, list) or not tables:
        raise SpecError(f"{where}: no [[recipe]]; add at least one, e.g. [[recipe]] name = \"mlp\" kind = \"train\" arch = \"mlp\"")
    out: list[RecipeSpec] = []
    repeated: dict[str, int] = {}  # recipes expanded over draws: name -> draws
    for i, table in enumerate(tables, 1):
        if not isinstance(table, dict):
            raise SpecError(f"{where} [[recipe]] #{i}: must be a table; write it as [[recipe]] with name = ... and kind = ...")
        name = table.get("name")
        label = f"{where} [[recipe]] #{i}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise SpecError(f"{label}: needs a 'name' of letters, digits, '-', '_' or '.'")
        label = f"{where} [[recipe]] '{name}'"
        if any(r.name == name for r in out):
            raise SpecError(f"{label}: the name is used twice; give each recipe its own name")
        kind = table.get("kind")
        if not isinstance(kind, str):
            raise SpecError(f"{label}: needs a 'kind' (e.g. kind = \"train\")")
        options = {k: v for k, v in table.items() if k not in ("name", "kind", "labels_per_class", "draws")}
        labels = table.get("labels_per_class")
        if labels is not None and not positive_int(labels):
            raise SpecError(f"{label}: labels_per_class must be a positive integer, got {labels!r}")
        draws = table.get("draws", 1)
        if not positive_int(draws):
            raise SpecError(f"{label}: draws must be a positive integer, got {draws!r}")
        if draws > 1 and labels is None:
            raise SpecError(f"{label}: draws = {draws} repeats the recipe on other labelled subsets; add labels_per_class = k to it")
        recipe = make_recipe(kind, options, label)  # validates keys and values now, not after training
        options = resolve_paths(RECIPES[kind].__init__, options, base_dir)  # options naming a file: relative to the study file
        parent = getattr(recipe, "parent", None)
        if parent is not None and parent in repeated:
            raise SpecError(f"{label}: parent '{parent}' was repeated over draws = {repeated[parent]}; name one draw, e.g. parent = \"{parent}.draw1\"")
        if parent is not None and not any(r.name == parent for r in out):
            raise SpecError(f"{label}: parent '{parent}' is not a recipe listed above{did_you_mean(parent, [r.name for r in out])}")
        if parent is not None and kind in _FLOAT_PARENT_ONLY:
            made = next(r for r in out if r.name == parent)
            float_graph = kind == "export" and made.kind == "export" and made.options.get("precision", "fp32") == "fp32"
            if made.kind in ("quantize", "export") and not float_graph:
                raise SpecError(f"{label}: parent '{parent}' is already compressed (kind = \"{made.kind}\"); name its float parent instead")
        if draws == 1:
            out.append(RecipeSpec(name, kind, options, labels))
        else:  # one candidate per draw; the same draw number gives every recipe the same labelled examples
            out.extend(RecipeSpec(f"{name}.draw{d}", kind, options, labels, d) for d in range(1, draws + 1))
            repeated[name] = draws
    return tuple(out)


def positive_int(value: object) -> bool:
    """An int of at least 1 (not a bool), as counts in a study file must be."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _checks(table: object, where: str) -> tuple[dict[str, dict[str, Any]], int]:
    from .checks import load_all
    from .checks.base import make_check

    registry = load_all()
    if not isinstance(table, dict):
        raise SpecError(f"{where}: [checks] must be a table, e.g. run = [\"performance\"]")
    names = table.get("run", [name for name, cls in registry.items() if cls.by_default])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SpecError(f"{where} [checks]: 'run' must be a list of check names, e.g. run = [\"performance\", \"calibration\"]")
    n_boot = table.get("n_boot", 1000)
    if not isinstance(n_boot, int) or isinstance(n_boot, bool):
        raise SpecError(f"{where} [checks]: 'n_boot' must be an integer, got {toml_text(n_boot)}; e.g. n_boot = 1000")
    check_limit("n_boot", n_boot, LIMITS["n_boot"], f"{where} [checks]", "; e.g. n_boot = 1000")
    for key, value in table.items():
        if key in _CHECKS_KEYS:
            continue
        if key in registry and not isinstance(value, dict):
            raise SpecError(f"{where} [checks]: '{key}' must be a table of the check's options, e.g. [checks.{key}] on its own line")
        if key not in registry:
            raise SpecError(f"{where} [checks]: unknown key '{key}'{did_you_mean(key, [*_CHECKS_KEYS, *registry])}; use run, n_boot or a [checks.<name>] table")
        if key not in names:
            raise SpecError(f"{where} [checks.{key}]: options for a check not in 'run'; add '{key}' to run")
    checks = {}
    for name in names:
        options = table.get(name, {})
        if not isinstance(options, dict):
            raise SpecError(f"{where} [checks.{name}]: must be a table of the check's options")
        make_check(name, options, where=f"{where} [checks]")  # validate now
        checks[name] = options
    return checks, n_boot
