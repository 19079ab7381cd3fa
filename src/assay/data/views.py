"""Views: named, deterministic transformations of a split.

A view name is ``family[:kind][@severity]``: ``clean``, ``corrupt:gaussian_noise@3``,
``ood:noise``, ``trigger``, ``adv:pgd@0.1``. The prediction cache keys on the name, so a
new family slots in by adding a transform here; checks only ask for names.

``trigger`` is the split's examples not of the poisoning target, with the
task's own backdoor trigger stamped (a task poisoned by ``[task] poison``);
``trigger:<kind>`` stamps a trigger of that kind (``data/triggers.py``, its
default settings) on any task of a modality it suits. The share of them
predicted as the target is the attack's success rate.

``adv:<attack>@<epsilon>[:from=<candidate>]`` names adversarial examples
(``AdversarialView``). They depend on a model, so they are never made here:
the prediction cache makes them per candidate (``checks/predictions.py``)
and ``apply_view`` refuses them.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np

from ..errors import SpecError
from .corruptions import CORRUPTIONS, SEVERITIES
from .task import Split, Task
from .transforms import poison_record
from .triggers import Trigger, make_trigger, stamp

_VIEW = re.compile(r"^(?P<family>[a-z]+)(?::(?P<kind>[a-z0-9_]+))?(?:@(?P<severity>[0-9.]+))?$")


@dataclass(frozen=True)
class ViewName:
    family: str
    kind: str | None = None
    severity: float | None = None

    @classmethod
    def parse(cls, name: str) -> ViewName:
        m = _VIEW.match(name)
        if not m:
            raise SpecError(f"view '{name}': cannot parse; write family[:kind][@severity], e.g. corrupt:gaussian_noise@3")
        sev = m["severity"]
        return cls(m["family"], m["kind"], None if sev is None else float(sev))

    def filename(self) -> str:
        """A file-system safe form of the name."""
        out = self.family + (f"-{self.kind}" if self.kind else "") + (f"-{self.severity:g}" if self.severity is not None else "")
        return out


_ADV = re.compile(r"^adv:(?P<attack>[a-z0-9_]+)@(?P<eps>[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)(?::from=(?P<source>[^\s:#@]+))?$")


@dataclass(frozen=True)
class AdversarialView:
    """An ``adv:<attack>@<epsilon>[:from=<candidate>]`` view name, parsed.

    The grammar is ``ViewName``'s ``family:kind@severity`` with one suffix of
    its own: ``:from=NAME`` names the candidate whose gradients make the
    examples (absent: the candidate judged makes its own).
    """

    attack: str
    epsilon: float
    source: str | None = None

    @classmethod
    def parse(cls, name: str, attacks: Collection[str] | None = None) -> AdversarialView:
        """Parse ``name``; ``attacks``: the attack names allowed (the models layer's registry; ``None``: any).

        Raises:
            SpecError: ``name`` is not an ``adv:`` view name, or names an attack not in ``attacks``.
        """
        m = _ADV.match(name)
        if not m:
            raise SpecError(f"view '{name}': cannot parse; write adv:<attack>@<epsilon>[:from=<candidate>], e.g. adv:pgd@0.1:from=cnn")
        if attacks is not None and m["attack"] not in attacks:
            raise SpecError(f"view '{name}': unknown attack '{m['attack']}'; use one of {', '.join(attacks)}")
        return cls(m["attack"], float(m["eps"]), m["source"])

    @property
    def name(self) -> str:
        return f"adv:{self.attack}@{self.epsilon:g}" + (f":from={self.source}" if self.source else "")


def is_adversarial(view: str) -> bool:
    """Whether ``view`` names adversarial examples (``adv:...``)."""
    return view.startswith("adv:")


VIEW_FAMILIES = ("clean", "corrupt", "ood", "trigger")
OOD_KINDS = ("holdout", "noise", "inverted", "user")


def view_rng(seed: int, name: str) -> np.random.Generator:
    """An rng of its own for each view name, so views do not depend on order."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def corruption_views(modality: str, severities: tuple[int, ...] = SEVERITIES) -> list[str]:
    """Every ``corrupt:<kind>@<severity>`` name for a modality."""
    return [f"corrupt:{kind}@{s}" for kind in CORRUPTIONS.get(modality, {}) for s in severities]


def expand_views(patterns: tuple[str, ...], task: Task) -> list[str]:
    """Concrete view names for patterns such as ``clean``, ``corrupt:*``, ``ood:*``."""
    out: list[str] = []
    for pattern in patterns:
        if pattern == "corrupt:*":
            out += corruption_views(task.modality)
        elif pattern == "trigger:*":  # the task's own trigger, when it was poisoned; nothing otherwise
            out += ["trigger"] if poison_record(task) is not None else []
        elif pattern == "ood:*":
            out += [f"ood:{k}" for k in OOD_KINDS if (k != "holdout" or task.ood is not None) and (k != "user" or task.ood_user is not None)]
        else:
            out.append(pattern)
    return list(dict.fromkeys(out))


def apply_view(task: Task, split: str, name: str, *, seed: int = 0) -> Split:
    """``task``'s ``split`` seen through view ``name``; the same seed gives the same data."""
    if is_adversarial(name):
        raise SpecError(f"view '{name}': adversarial examples depend on a model; ask the prediction cache for them (they are made per candidate)")
    data = task.split(split)
    view = ViewName.parse(name)
    if view.family == "clean":
        return data
    if view.family == "corrupt":
        kinds = CORRUPTIONS.get(task.modality, {})
        if view.kind not in kinds:
            raise SpecError(f"view '{name}': no corruption '{view.kind}' for {task.modality} data; available: {', '.join(kinds)}")
        if view.severity not in SEVERITIES:
            raise SpecError(f"view '{name}': severity must be one of 1-5")
        fn = kinds[view.kind]
        rng = view_rng(seed, f"{split}|{name}")
        if task.modality == "text":  # corrupt the strings, then tokenize them as the task does
            return _retokenized(task, data, fn(np.asarray(data.meta["text"], dtype=object), int(view.severity), rng))
        source = np.asarray(data.x)  # corruptions work on whole arrays: a lazy dataset is decoded here
        if view.kind == "missing_values" and "missing_fill" in task.info:
            x = fn(source, int(view.severity), rng, fill=np.asarray(task.info["missing_fill"], dtype=source.dtype))
        else:
            x = fn(source, int(view.severity), rng)
        x = x.astype(source.dtype) if source.dtype != object else x
        return replace(data, x=x)
    if view.family == "ood":
        return _ood(task, data, view, view_rng(seed, f"{split}|{name}"), name)
    if view.family == "trigger":
        return _triggered(task, data, view, name)
    raise SpecError(f"view '{name}': unknown family '{view.family}'; available: {', '.join(VIEW_FAMILIES)}")


def _ood(task: Task, data: Split, view: ViewName, rng: np.random.Generator, name: str) -> Split:
    """Out-of-distribution inputs: held-out classes (near) or synthetic ones (far), labels -1."""
    if view.kind == "holdout":
        if task.ood is None:
            raise SpecError(f"view '{name}': the task has no held-out classes; set holdout_classes in [task]")
        return task.ood
    if view.kind == "user":
        if task.ood_user is None:
            raise SpecError(f"view '{name}': the task has no OOD set of yours; set ood = {{ path = \"...\" }} in [task]")
        return task.ood_user
    x = np.asarray(data.meta["text"], dtype=object) if task.modality == "text" else np.asarray(data.x)
    if view.kind == "noise":
        if task.modality == "image":
            fake = rng.random(x.shape)  # uniform noise images on [0, 1]
        elif task.modality == "text":  # the same words in a random order
            fake = np.array([" ".join(rng.permutation(str(t).split())) for t in x], dtype=object)
        else:  # matched to each feature's spread, three times wider
            fake = rng.normal(x.mean(0), 3 * x.std(0) + 1e-6, x.shape)
    elif view.kind == "inverted":
        if task.modality == "image":
            fake = 1.0 - x
        elif task.modality == "signal":
            fake = -x[..., ::-1]
        elif task.modality == "text":
            fake = np.array([str(t)[::-1] for t in x], dtype=object)
        else:
            fake = -x
    else:
        raise SpecError(f"view '{name}': unknown OOD set '{view.kind}'; available: {', '.join(OOD_KINDS)}")
    if task.modality == "text":
        return _retokenized(task, Split(data.x, np.full(len(x), -1)), fake)
    fake = np.ascontiguousarray(fake, dtype=x.dtype)
    return Split(fake, np.full(len(x), -1))


def _triggered(task: Task, data: Split, view: ViewName, name: str) -> Split:
    """The rows of ``data`` not of the poisoning target (every row when none is known), with the trigger stamped; true labels kept."""
    record = poison_record(task)
    if view.kind is None:
        if record is None:
            raise SpecError(f"view '{name}': the task was not poisoned, so it has no trigger; "
                            "set poison = { kind = \"badnets\", fraction = 0.05, target = \"0\" } in [task], or name one: trigger:patch")
        trigger = Trigger.from_record(record["trigger"])
    else:
        trigger = make_trigger(task, view.kind, where=f"view '{name}'")
    keep = data.y != record["target_index"] if record is not None else np.ones(len(data), bool)
    return stamp(task, data.subset(keep), trigger)


def _retokenized(task: Task, data: Split, texts: np.ndarray) -> Split:
    return replace(data, x=task.pipeline.encode(texts), meta={**data.meta, "text": texts})
