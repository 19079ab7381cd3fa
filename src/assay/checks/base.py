"""Check, Evidence and the registry of checks.

A check asks one question about a candidate. It declares what it needs (the
views and splits whose predictions it reads, and whether it needs embeddings),
reads them from the shared prediction cache, and returns frozen Evidence
records. Its math lives in pure functions next to it; the class only gathers
inputs and records results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import SpecError, did_you_mean
from ..evidence import SKIPPED, Evidence
from .metrics import Metric

if TYPE_CHECKING:
    from ..data.task import Split, Task
    from ..models.candidate import Candidate
    from .predictions import PredictionCache, Predictions


ALWAYS_RUN = ("baseline",)  # checks every study runs, whatever its [checks] run list says


@dataclass
class CheckContext:
    """What a check may read: the task, the shared predictions, the seed, the other candidates."""

    task: Task
    predictions: PredictionCache
    seed: int = 0
    n_boot: int = 1000
    candidates: Mapping[str, Candidate] = field(default_factory=dict)  # all of the study's, by name
    views: tuple[str, ...] = ()  # test-split views the study's checks asked for (prefetched): others may read them at no cost
    split: str = "test"  # the split checks evaluate on: "val" when a policy decides there, "test" for the reported figures
    # The study's configured checks, by name, so one check can follow another's options
    # (comparison bins ECE as calibration does and compares the group fairness reads).
    checks: Mapping[str, Check] = field(default_factory=dict)

    @property
    def data(self) -> Split:
        """The labelled split being evaluated (its metadata and groups)."""
        return self.task.split(self.split)

    @property
    def reference(self) -> Candidate | None:
        """The study's reference for relative metrics: its first candidate."""
        return next(iter(self.candidates.values()), None)

    def predict(self, candidate: Candidate, split: str | None = None, view: str = "clean", embeddings: bool = False) -> Predictions:
        """Cached predictions on ``split`` (default: the split being evaluated) through ``view``."""
        return self.predictions.get(candidate, self.task, split=split or self.split, view=view, embeddings=embeddings)


class Check:
    """Base class: constructors store keyword-only parameters; ``run`` computes.

    Subclasses set ``name``, ``metrics`` (name -> ``Metric``, from
    ``metrics.declare``: everything the store, policy and report know about
    each metric is declared there) and, where they differ from the defaults,
    ``needs``, ``views`` and ``splits`` (clean splits read besides the
    evaluated one, e.g. ``val`` to fit a temperature). ``per_split = False``
    marks a check whose figures do not depend on the evaluated split
    (efficiency): it runs once. ``covers`` says what inputs a model that went
    through the check was tested on (the model card lists what was not run),
    and ``worst_finding`` gives the report's one-line worst finding.
    """

    name: ClassVar[str]
    metrics: ClassVar[Mapping[str, Metric]] = {}
    needs: ClassVar[tuple[str, ...]] = ("logits",)
    views: ClassVar[tuple[str, ...]] = ("clean",)
    splits: ClassVar[tuple[str, ...]] = ("test",)
    per_split: ClassVar[bool] = True
    covers: ClassVar[str] = ""
    # In a study whose [checks] table has no run list; a costly check the user has to ask for sets False.
    by_default: ClassVar[bool] = True

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str | None:
        """Where a candidate is weakest, in a few words, from its records of this check (metric -> Evidence).

        ``None`` (the default): the check has no column in the report's findings
        table; ``""``: it has one, but these records say nothing.
        """
        return None

    def run(self, candidate: Candidate, context: CheckContext) -> list[Evidence]:
        raise NotImplementedError  # each registered check overrides it

    def requests(self, task: Task, evaluated: tuple[str, ...] = ("test",)) -> set[tuple[str, str, bool]]:
        """The (split, view, embeddings) predictions this check reads when evaluating on ``evaluated``."""
        from ..data.views import expand_views

        embeddings = "embeddings" in self.needs
        if not self.needs:
            return set()
        out = {(split, "clean", embeddings) for split in (*self.splits, *evaluated)}
        out |= {(split, view, embeddings) for split in evaluated for view in expand_views(self.views, task) if view != "clean"}
        return out

    def params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        from .._options import option_names

        return {p: getattr(self, p) for p in option_names(type(self))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def skipped(self, candidate: Candidate, reason: str) -> Evidence:
        """A record saying the check did not apply, and why (not an error)."""
        return Evidence(check=self.name, metric=SKIPPED, candidate=candidate.name, value=math.nan, details={"reason": reason})

    def evidence(self, candidate: Candidate, metric: str, value: float, interval=None, **kw: Any) -> Evidence:
        """An Evidence record for ``metric``, its direction read from its declaration in ``metrics``."""
        low, high = interval if interval is not None else (None, None)
        return Evidence(
            check=self.name,
            metric=metric,
            candidate=candidate.name,
            value=float(value),
            low=None if low is None else float(low),
            high=None if high is None else float(high),
            higher_is_better=self.metrics[metric].higher_is_better,
            **kw,
        )


CHECKS: dict[str, type[Check]] = {}


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator adding a check to the registry under ``cls.name``.

    Raises:
        ValueError: when one of its metrics is already another check's (metric names key the store, policy and report alone).
    """
    for other in CHECKS.values():
        shared = sorted(set(cls.metrics) & set(other.metrics))
        if other.name != cls.name and shared:
            raise ValueError(f"check '{cls.name}' declares {', '.join(shared)}, already produced by '{other.name}'; give its metrics their own names")
    CHECKS[cls.name] = cls
    return cls


def make_check(name: str, options: Mapping[str, Any], where: str = "[checks]") -> Check:
    """Build a registered check from study-file options, naming any bad key."""
    from .._options import construct
    from . import load_all

    load_all()
    if name not in CHECKS:
        raise SpecError(f"{where}: unknown check '{name}'{did_you_mean(name, CHECKS)}; known: {', '.join(sorted(CHECKS))}")
    return construct(CHECKS[name], options, f"{where}.{name}")


def known_metrics() -> dict[str, Metric]:
    """Every metric any registered check can report, with its declaration, in registry order."""
    from . import load_all

    out: dict[str, Metric] = {}
    for cls in load_all().values():
        out.update(cls.metrics)
    return out
