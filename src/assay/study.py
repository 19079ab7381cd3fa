"""Study: recipes -> candidates -> checks -> select -> report.

    from assay import Study
    result = Study.from_file("examples/digits.toml").run()
    print(result.decision.chosen, result.report)

A study run is resumable: running the same study file again (same text and
seed) continues the newest unfinished run of it; finished candidates are
loaded, an interrupted training resumes from its last epoch checkpoint, and
predictions already on disk are read back.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks.base import ALWAYS_RUN, CheckContext, make_check
from .evidence import Evidence
from .checks.predictions import PredictionCache
from .data.task import Task
from .data.task_table import load_task
from .data.transforms import LabelsPerClass, TransformContext, apply_transforms, transforms_in
from .models.candidate import Candidate, library_versions
from .models.device import resolve_device
from .models.foreign import as_candidate
from .recipes.base import RecipeContext, make_recipe
from .resolve import validate_against_task
from .select import Decision, select
from .spec import StudySpec, load_study, parse_study
from .store import Store

_log = logging.getLogger("assay")


@dataclass(frozen=True)
class StudyResult:
    """What a finished study produced."""

    run_id: str
    run_dir: Path
    decision: Decision
    candidates: list[dict[str, Any]]
    evidence: list[Evidence]
    exit_code: int
    report: Path
    model_card: Path
    resumed: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def table(self, split: str = "test") -> Any:
        """The evidence measured on ``split`` as a pandas DataFrame, one row per candidate and metric.

        Columns: ``candidate``, ``check``, ``metric``, ``value``, ``low``,
        ``high`` (the 95% interval; NaN where none applies),
        ``higher_is_better``, ``reference`` (for a paired figure) and
        ``view``. A check that did not apply is a row with metric
        ``skipped`` and its reason in ``note``.
        """
        import pandas as pd

        from .evidence import SKIPPED

        rows = [{"candidate": e.candidate, "check": e.check, "metric": e.metric, "value": e.value,
                 "low": math.nan if e.low is None else e.low, "high": math.nan if e.high is None else e.high,
                 "higher_is_better": e.higher_is_better, "reference": e.reference, "view": e.view,
                 "note": e.details.get("reason", "") if e.metric == SKIPPED else ""}
                for e in self.evidence if e.split == split]
        return pd.DataFrame(rows, columns=["candidate", "check", "metric", "value", "low", "high", "higher_is_better", "reference", "view", "note"])

    def _repr_html_(self) -> str:
        """In a notebook: the report's decision box and summary table, as at the top of ``report.html``."""
        from .report.html import notebook_html

        return notebook_html(report_data(Store(self.run_dir.parent), self.run_id))


class Study:
    """Runs one study file end to end.

    Args:
        spec: a validated study (``load_study``).
        out: the runs folder (index database inside).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: overrides the study file's seed.
        progress: show progress bars.
        new: start a new run even if an unfinished one could be resumed.
        quick: run the study made small (``StudySpec.quick_version``) to try it
            end to end; the report says so, and its figures are not for deciding.
        task: the data, given in code (``Task.from_arrays`` ...) instead of the
            ``[task]`` table's source; the table's transforms still apply.
        candidates: models given in code, name -> a ``torch.nn.Module``, an
            object with ``predict_proba`` or a callable (``models/foreign.py``),
            judged beside the recipes' candidates and given back as they came.
        outputs: what the brought models return: ``"logits"`` or
            ``"probabilities"`` (default: logits for a module, probabilities
            for the others).
    """

    def __init__(self, spec: StudySpec, *, out: Path | str = "runs", device: str = "auto", seed: int | None = None, progress: bool = True,
                 new: bool = False, quick: bool = False, task: Task | None = None, candidates: Mapping[str, Any] | None = None,
                 outputs: str | None = None) -> None:
        candidates = dict(candidates or {})
        if set(candidates) != set(spec.brought):  # the spec must know their names: no recipe may take one
            spec = parse_study(spec.text, path=spec.path, brought=tuple(candidates))
        self.spec = spec.quick_version() if quick else spec
        self.task = task
        self.brought = candidates
        self.outputs = outputs
        self.store = Store(out)
        self.device = resolve_device(device)
        self.seed = spec.seed if seed is None else seed
        self.progress = progress
        self.new = new

    @classmethod
    def from_file(cls, path: Path | str, **options: Any) -> Study:
        """The study a file describes; ``candidates={"mine": model}`` adds models given in code (see ``Study``)."""
        return cls(load_study(path, brought=tuple(options.get("candidates") or ())), **options)

    def run(self, *, on_epoch_end: Callable[[int, dict], None] | None = None) -> StudyResult:
        """Make every candidate, run every check, decide, and write the report."""
        spec, store = self.spec, self.store
        timings: dict[str, float] = {}
        started = time.perf_counter()
        where = f"{spec.path or 'study'} [task]"
        if self.task is None:
            task = load_task(spec.task, base_dir=spec.base_dir, seed=self.seed, where=where)
        else:  # data given in code: the table names it, and may still ask for transforms
            task = apply_transforms(self.task, transforms_in(spec.task, where), TransformContext(seed=self.seed, base_dir=spec.base_dir, where=where))
        validate_against_task(spec, task)  # names, sizes and memory resolved against the task before anything trains
        brought: dict[str, Candidate] = {}
        try:
            for name, model in self.brought.items():  # refused here, before any run folder exists
                brought[name] = as_candidate(name, model, task, outputs=self.outputs, device=self.device)
            timings["load_task_s"] = time.perf_counter() - started
            # What was given in code is part of the study's identity: another model or other data is another run.
            given = [f"# data given in code: {task.name}, digest {task.digest()}"] if self.task is not None else []
            given += [f"# candidate given in code: {c.name} = {c.provenance.arch.get('class')} ({c.kind}), id {c.id}" for c in brought.values()]
            if given:
                spec = dataclasses.replace(spec, text=spec.text.rstrip("\n") + "\n\n" + "\n".join(given) + "\n")
            config_hash = spec.config_hash(self.seed)
            # One process per run: its lock is held until the report is written; leaving early marks it interrupted.
            with store.open_run(spec.name, config_hash, lambda: self._meta(task, config_hash), spec.text, resume=not self.new) as run:
                return self._run(task, run.id, run.resumed, timings, on_epoch_end, brought)
        finally:
            for candidate in brought.values():  # the user's module back in the mode and on the device it came
                candidate.restore()

    def _run(self, task: Task, run_id: str, resumed: bool, timings: dict[str, float], on_epoch_end, brought: dict[str, Candidate]) -> StudyResult:
        spec, store = self.spec, self.store
        run_dir = store.run_dir(run_id)

        started = time.perf_counter()
        for candidate in brought.values():  # described in the run like any other; never rebuilt from these files
            store.save_candidate(run_id, candidate)
        made, failed = self._make_candidates(task, run_id, on_epoch_end, brought)
        candidates = {**brought, **made}
        timings["make_s"] = time.perf_counter() - started
        _log.info("candidates: %d made, %d failed (%.1f s)", len(candidates), len(failed), timings["make_s"])

        started = time.perf_counter()
        cache = PredictionCache(run_dir / "predictions", device=self.device, seed=self.seed)
        evidence = store.checks_done(run_id, candidates.values())  # killed after its checks: resume at the report
        if evidence is None:
            evidence = self.evaluate(task, list(candidates.values()), cache)
            store.save_evidence(run_id, evidence)
        timings["evaluate_s"] = time.perf_counter() - started
        timings["forward_s"] = cache.forward_seconds
        _log.info("checks: %d evidence records (%.1f s)", len(evidence), timings["evaluate_s"])

        draws = {r.name: r.name.rsplit(".draw", 1)[0] for r in spec.recipes if r.draw}
        decision = select(evidence, [*brought, *(r.name for r in spec.recipes)], spec.policy, failed=failed, draws=draws)
        exit_code = 0 if decision.chosen else 1
        store.finish_run(run_id, decision, exit_code)
        started = time.perf_counter()
        report, card = build_report(store, run_id)
        timings["report_s"] = time.perf_counter() - started
        _log.info("report: %s (%.1f s)", report, timings["report_s"])
        descriptions = store.candidate_descriptions(run_id, candidates)
        return StudyResult(run_id, run_dir, decision, descriptions, evidence, exit_code, report, card, resumed, timings)

    def _meta(self, task: Task, config_hash: str) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "description": self.spec.description,
            "study_path": str(self.spec.path) if self.spec.path else None,
            "config_hash": config_hash,
            "data_hash": task.digest(),
            "seed": self.seed,
            "quick": self.spec.quick,
            "device": str(self.device),
            "task": task.summary(),
            "environment": {**library_versions(), "platform": platform.platform(), "machine": platform.machine(), "device": str(self.device)},
        }

    def _make_candidates(self, task: Task, run_id: str, on_epoch_end, brought: dict[str, Candidate]) -> tuple[dict[str, Candidate], dict[str, str]]:
        """Every recipe's candidate, and the recipes whose training failed (name -> reason).

        A diverged training stops that candidate only: it is recorded as failed
        (``work/NAME/failed.txt``, so a resumed run does not retry it), cannot be
        chosen, and so cannot parent a child either.
        """
        from ._io import write_text
        from .errors import TrainingDiverged

        made: dict[str, Candidate] = {}
        failed: dict[str, str] = {}
        where = self.spec.path or "study"
        for recipe_spec in self.spec.recipes:
            name = recipe_spec.name
            if self.store.has_candidate(run_id, name):
                made[name] = self.store.load_candidate(run_id, name)
                continue
            marker = self.store.run_dir(run_id) / "work" / name / "failed.txt"
            parent = recipe_spec.options.get("parent")
            if marker.is_file() or parent in failed:
                failed[name] = marker.read_text().strip() if marker.is_file() else f"its parent '{parent}' failed"
                continue
            label = f"{where} [[recipe]] '{name}'"
            recipe = make_recipe(recipe_spec.kind, recipe_spec.options, label)
            k = recipe_spec.labels_per_class
            labelled = LabelsPerClass(labels_per_class=k, draw=recipe_spec.draw) if k else None  # checked in validate_against_task
            context = RecipeContext(
                name=name,
                task=labelled.apply(task, TransformContext(seed=self.seed, base_dir=self.spec.base_dir, where=label)) if labelled else task,
                work_dir=self.store.run_dir(run_id) / "work" / name,
                device=self.device,
                seed=self.seed,
                candidates={**brought, **made},
                progress=self.progress,
                on_epoch_end=on_epoch_end,
                shared_dir=self.store.run_dir(run_id) / "work" / "_shared",
            )
            try:
                candidate = recipe.make(name, context)
            except TrainingDiverged as error:
                failed[name] = str(error)
                write_text(marker, str(error) + "\n")
                print(f"assay: {error}", file=sys.stderr)
                continue
            if k:  # recorded where the report and the label-efficiency plot read it
                prov = candidate.provenance
                labels = {"labels_per_class": k, **({"label_draw": recipe_spec.draw} if recipe_spec.draw else {})}
                candidate = Candidate(name, candidate.model, dataclasses.replace(prov, config={**prov.config, **labels}), candidate.training)
            self.store.save_candidate(run_id, candidate)
            made[name] = candidate
        return made, failed

    def evaluate(self, task: Task, candidates: list[Candidate], cache: PredictionCache) -> list[Evidence]:
        """Every check on every candidate on the test split, and on the split the policy decides on.

        On the validation split only the checks whose metrics the policy reads
        run (plus ``performance`` and the always-run ones): nothing else reads
        those figures. A check whose figures do not depend on the split
        (efficiency) runs once, and its records serve both splits.
        """
        from tqdm.auto import tqdm

        names = [*(n for n in ALWAYS_RUN if n not in self.spec.checks), *self.spec.checks]
        checks = [make_check(name, self.spec.checks.get(name, {})) for name in names]
        policy = self.spec.policy
        wanted = policy.metrics()
        deciding = [k for k in checks if policy.select_on != "test" and (k.name in (*ALWAYS_RUN, "performance") or wanted & set(k.metrics))]
        requests = set().union(*(k.requests(task) for k in checks), *(k.requests(task, (policy.select_on,)) for k in deciding if k.per_split))
        base = dict(task=task, predictions=cache, seed=self.seed, n_boot=self.spec.n_boot, candidates={c.name: c for c in candidates},
                    checks={k.name: k for k in checks})  # comparison reads calibration's bins and fairness's group
        contexts = {split: CheckContext(**base, split=split, views=tuple(sorted({v for s, v, _ in requests if s == split})))
                    for split in dict.fromkeys(("test", policy.select_on))}
        cache.prefetch(candidates, task, requests, progress=self.progress)
        evidence: list[Evidence] = []
        jobs = [(c, k, "test") for c in candidates for k in checks] + [(c, k, policy.select_on) for c in candidates for k in deciding]
        with tqdm(jobs, desc="checks", unit="check", disable=not self.progress, dynamic_ncols=True) as bar:
            for candidate, check, split in bar:
                bar.set_postfix_str(f"{candidate.name}: {check.name} ({split})")
                if split == "test" or check.per_split:
                    found = check.run(candidate, contexts[split])
                else:  # measured once on test; the same records stand for the deciding split
                    found = [e for e in evidence if e.candidate == candidate.name and e.check == check.name and e.split == "test"]
                evidence.extend(dataclasses.replace(e, split=split) if e.split == "test" else e for e in found)
        return evidence


def build_report(store: Store, run_id: str) -> tuple[Path, Path]:
    """(Re)write a run's HTML report and model card from what the store holds."""
    from .report import write_report

    return write_report(store.run_dir(run_id), report_data(store, run_id))


def report_data(store: Store, run_id: str) -> Any:
    """What a run's report shows (``report.ReportData``), read from the store."""
    from .report import ReportData

    meta = store.run_meta(run_id)
    evidence = store.load_evidence(run_id)
    order = list(dict.fromkeys(e.candidate for e in evidence))
    folder = store.run_dir(run_id) / "candidates"
    order += sorted(p.stem for p in folder.glob("*.json") if p.stem not in order)
    return ReportData(
        run_id=run_id,
        study_name=meta.get("name", run_id),
        created=meta.get("created", ""),
        task=meta.get("task", {}),
        candidates=store.candidate_descriptions(run_id, order),
        evidence=evidence,
        decision=store.load_decision(run_id),
        study_text=store.study_text(run_id),
        environment=meta.get("environment", {}),
        quick=bool(meta.get("quick", False)),
    )
