"""The shared inference cache: one batched forward pass per (candidate, split, view).

Checks never call a model for a forward pass of their own; they ask this
cache, and the cache runs the model layer's one forward pass
(``models.forward.forward_pass``, memory bounded by the batch). Results live in memory for the run and on disk under
``runs/<id>/predictions/<candidate id>/``, keyed by the candidate's content
hash, the task's data hash, the split and the view name, so a resumed run or
a rebuilt report reads them back instead of recomputing. A view such as
``corrupt:gaussian_noise@3`` is materialised by ``data.views`` only when its
predictions are not cached yet.

Adversarial examples are views too, but of one candidate: ``adv:pgd@0.1``
is ``pgd`` at radius 0.1 against the candidate itself, and
``adv:pgd@0.1:from=cnn`` the same examples made on ``cnn`` and shown to the
candidate (a transfer attack). ``get`` intercepts these names before
``data.views`` sees them: the examples are generated once (``models/attacks.py``),
kept in memory for every candidate they transfer to, and the predictions are
stored like any view's, keyed also by the source candidate's content hash, the
attack's settings and the rows attacked (an ``Adversary``).

Penultimate features (``embeddings=True``) are not kept in the ``.npz``: on
disk they stream, batch by batch, into a ``.features.npy`` beside it and are
read back memory-mapped (``feature_files.py``), so a check that reads a large
training split's features one class at a time (``poisoning``) never holds
them all. In a cache without a folder they stay in memory, as the pass
returns them.

A file read back is never trusted as it is: it must name the candidate, data,
split and view it was asked for, hold ``(N, K)`` logits for the task's K
classes and the split's N rows with the split's labels, and match the checksum
written with it; its features file must match the shape, dtype and checksum
the ``.npz`` recorded. Anything else (a damaged or truncated file, one copied
from another run or candidate, an older format) is recomputed and
overwritten, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_path
from ..data.task import Task
from ..data.views import AdversarialView, ViewName, apply_view, is_adversarial  # AdversarialView: checks import it from here too
from ..errors import ModelError, SpecError
from ..models import attacks
from ..models.candidate import Candidate
from ..models.classifier import Classifier
from ..models.forward import forward_pass
from ..models.gradients import logits_at
from ..models.inputs import as_input
from .feature_files import DamagedFeatures, FeatureRecord, open_features, write_features, writing_features

FORMAT = 2  # bump when the file layout changes: older files are then recomputed (2: features in their own .npy)


@dataclass(frozen=True, eq=False)
class Predictions:
    """Model outputs on one split seen through one view.

    Attributes:
        logits: ``(N, K)`` float32.
        labels: ``(N,)`` int64 true classes.
        embeddings: ``(N, D)`` float32 penultimate features, when asked for
            (read-only and memory-mapped when the cache has a folder: index
            the rows needed rather than copying it whole).
        seconds: forward-pass time spent producing them (0 when read back).
        rows: for an adversarial view, the split's rows attacked, in order (``None``: every row).
        inputs: for an adversarial view in input space, the first few adversarial inputs (for the report).
    """

    logits: np.ndarray
    labels: np.ndarray
    split: str
    view: str
    embeddings: np.ndarray | None = None
    seconds: float = 0.0
    rows: np.ndarray | None = None
    inputs: np.ndarray | None = None

    @cached_property
    def probs(self) -> np.ndarray:
        """Softmax of the logits in float64 ``(N, K)``."""
        z = self.logits.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @cached_property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


@dataclass(frozen=True, eq=False)
class Adversary:
    """What an ``adv:`` view needs besides its name.

    Attributes:
        settings: the attack's settings (its ``attack`` must be the view's).
        rows: the split's rows to attack, in order (``None``: all of them).
        source: the candidate a ``from=`` view's examples are made on.
        keep: how many adversarial inputs to keep with the predictions (the report shows a few).
    """

    settings: attacks.AttackSettings
    rows: np.ndarray | None = None
    source: Candidate | None = None
    keep: int = 4


@dataclass
class PredictionCache:
    """Computes predictions once and hands them to every check.

    Args:
        folder: where to keep them on disk (``None``: memory only).
        device: where to run the models.
        batch_size: inference batch size.
        seed: seeds random views.
    """

    folder: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 512
    seed: int = 0
    forward_seconds: float = 0.0
    _memory: dict[tuple, Predictions] = field(default_factory=dict, repr=False)
    _bodies: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)  # features of frozen pretrained bodies, shared
    _examples: dict[tuple, torch.Tensor] = field(default_factory=dict, repr=False)  # adversarial inputs by source and attack, shared
    attack_seconds: float = 0.0

    def get(self, candidate: Candidate, task: Task, *, split: str = "test", view: str = "clean", embeddings: bool = False,
            adversary: Adversary | None = None) -> Predictions:
        """Predictions of ``candidate`` on ``task``'s ``split`` through ``view``; embeddings only where the model has features.

        An ``adv:`` view is attacked with ``adversary``'s settings, rows and
        source (default: the view's attack with default settings, every row,
        the candidate itself); its predictions carry no embeddings.

        Raises:
            SpecError: a bad ``adv:`` name, or a ``from=`` view without its source candidate.
            ModelError: a gradient attack on a model without usable gradients.
        """
        if is_adversarial(view):
            return self._adversarial(candidate, task, split, view, adversary)
        embeddings = embeddings and candidate.capabilities.features
        key = (candidate.id, task.digest()[:16], split, view)
        found = self._memory.get(key)
        if found is not None and (found.embeddings is not None or not embeddings):
            return found
        found = self._read(key, task, embeddings)
        if found is None:
            found = self._compute(candidate, apply_view(task, split, view, seed=self.seed), key, task, embeddings)
        self._memory[key] = found
        return found

    def prefetch(self, candidates: list[Candidate], task: Task, requests: set[tuple[str, str, bool]], *, progress: bool = False) -> None:
        """Compute every requested (split, view) for every candidate, each view materialised once.

        Requests for the same (split, view) merge: embeddings are kept when any
        check asks for them, so one pass serves both kinds of reader.
        """
        from tqdm.auto import tqdm

        merged: dict[tuple[str, str], bool] = {}
        for split, view, embeddings in requests:
            merged[(split, view)] = merged.get((split, view), False) or embeddings
        with tqdm(total=len(merged) * len(candidates), desc="predictions", unit="pass", disable=not progress, dynamic_ncols=True) as bar:
            for (split, view), embeddings in sorted(merged.items()):
                data = None
                for candidate in candidates:
                    bar.set_postfix_str(f"{candidate.name}: {split}/{view}")
                    if is_adversarial(view):  # made per candidate, never by apply_view
                        self.get(candidate, task, split=split, view=view)
                        bar.update()
                        continue
                    key = (candidate.id, task.digest()[:16], split, view)
                    wanted = embeddings and candidate.capabilities.features
                    found = self._memory.get(key) or self._read(key, task, wanted)
                    if found is None or (wanted and found.embeddings is None):
                        data = data if data is not None else apply_view(task, split, view, seed=self.seed)
                        found = self._compute(candidate, data, key, task, wanted)
                    self._memory[key] = found
                    bar.update()

    def _adversarial(self, candidate: Candidate, task: Task, split: str, view: str, adversary: Adversary | None) -> Predictions:
        """Predictions of ``candidate`` on adversarial examples of ``split`` (see ``Adversary``), made once and stored."""
        parsed = AdversarialView.parse(view, attacks.ATTACKS)
        adversary = adversary or Adversary(attacks.AttackSettings(attack=parsed.attack))
        if adversary.settings.attack != parsed.attack:
            raise SpecError(f"view '{view}': the attack's settings are for '{adversary.settings.attack}', not '{parsed.attack}'")
        source = candidate
        if parsed.source:
            if adversary.source is None or adversary.source.name != parsed.source:
                raise SpecError(f"view '{view}': the examples come from candidate '{parsed.source}'; pass it as the Adversary's source")
            source = adversary.source
        data = task.split(split)
        rows = np.arange(len(data)) if adversary.rows is None else np.asarray(adversary.rows, dtype=np.int64)
        tag = hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()[:12]
        made = (source.id, task.digest()[:16], split, parsed.attack, parsed.epsilon, adversary.settings.digest(), tag)
        name = f"{parsed.name}#{source.id if parsed.source else ''}.{adversary.settings.digest()}.{tag}"
        key = (candidate.id, task.digest()[:16], split, name)
        found = self._memory.get(key) or self._read(key, task, False, rows)
        if found is None:
            adv = self._examples.get(made)
            if adv is None:
                adv = self._attack(source, task, split, parsed, adversary.settings, rows)
                self._examples[made] = adv
            candidate.to(self.device)
            x = as_input(data.x[rows])
            started = time.perf_counter()
            if adv.is_floating_point() and x.is_floating_point():
                out = forward_pass(candidate.model, adv, batch_size=self.batch_size, device=candidate.device)
                logits, seconds = out.logits, out.seconds
            else:  # token ids: the candidate reads the adversarial embeddings through its embedding layer
                logits, seconds = logits_at(candidate.model, x, adv, chunk=self.batch_size).cpu(), time.perf_counter() - started
            self.forward_seconds += seconds
            kept = adv[: adversary.keep].cpu().numpy() if adversary.keep and x.is_floating_point() else None
            found = Predictions(logits=logits.numpy(), labels=np.asarray(data.y)[rows].astype(np.int64), split=split, view=view,
                                seconds=seconds, rows=rows, inputs=kept)
            self._write(key, task, found)
        found = Predictions(logits=found.logits, labels=found.labels, split=split, view=view, seconds=found.seconds,
                            rows=found.rows, inputs=found.inputs)  # named as asked, whatever key it was stored under
        self._memory[key] = found
        return found

    def _attack(self, source: Candidate, task: Task, split: str, view: AdversarialView, settings: attacks.AttackSettings,
                rows: np.ndarray) -> torch.Tensor:
        """Adversarial points (input or embedding space) made on ``source``, on the CPU."""
        if settings.attack in attacks.WHITE_BOX and not source.capabilities.differentiable:
            raise ModelError(f"candidate '{source.name}': {source.capabilities.lacks('differentiable')}, so a gradient attack "
                             f"({settings.attack}) cannot run on it; use adv:square@{view.epsilon:g} or a transfer view from its parent (:from=PARENT)")
        source.to(self.device)
        data = task.split(split)
        x, y = as_input(data.x[rows]), torch.as_tensor(np.asarray(data.y)[rows], dtype=torch.long)
        constraint = attacks.constraint_for(task, source.model)
        started = time.perf_counter()
        adv = attacks.run_attack(source.model, x.to(source.device), y.to(source.device), view.epsilon, constraint, settings,
                                 chunk=max(self.batch_size, attacks.CHUNK))
        self.attack_seconds += time.perf_counter() - started
        return adv.detach().cpu()

    def _compute(self, candidate: Candidate, data, key: tuple, task: Task, embeddings: bool) -> Predictions:
        """One forward pass, stored; a frozen pretrained body's features are computed once and shared by every head on it.

        With a folder, asked-for features go straight from the pass to their
        file (``feature_files.writing_features``) and come back memory-mapped.
        """
        _, digest, split, view = key
        where = (digest, split, view)
        body = _frozen_body(candidate)
        shared = self._bodies.get((body, *where)) if body else None
        target = self._features_path(key) if embeddings else None
        record = None
        candidate.to(self.device)  # int8 and ONNX Runtime candidates stay on the CPU
        if shared is not None:  # only the head runs: linear probes, prototypes and label-efficiency draws on one encoder
            logits = forward_pass(candidate.model.head, _Copies(shared), batch_size=self.batch_size).logits
            features, seconds = shared, 0.0
            if target is not None:
                record = write_features(target, shared)
        elif target is not None:
            with writing_features(target, len(data.y)) as sink:
                out = forward_pass(candidate.model, data.x, batch_size=self.batch_size, device=candidate.device, features_to=sink.put)
            record, features = sink.record, np.load(target, mmap_mode="r")
            logits, seconds = out.logits, out.seconds
        else:
            out = forward_pass(candidate.model, data.x, batch_size=self.batch_size, device=candidate.device, features=embeddings or body is not None)
            logits, seconds = out.logits, out.seconds
            features = out.features.numpy() if out.features is not None else None
        if body and shared is None:
            self._bodies[(body, *where)] = features
        self.forward_seconds += seconds
        found = Predictions(
            logits=logits.numpy(),
            labels=np.asarray(data.y, dtype=np.int64),
            split=split,
            view=view,
            embeddings=features if embeddings else None,
            seconds=seconds,
        )
        self._write(key, task, found, record)
        return found

    def _path(self, key: tuple) -> Path | None:
        if self.folder is None:
            return None
        cand, data, split, view = key
        if is_adversarial(view):  # adv:pgd@0.1:from=cnn#<source id>.<settings>.<rows>
            shown, _, tag = view.partition("#")
            parsed = AdversarialView.parse(shown, attacks.ATTACKS)
            source, settings, rows = tag.split(".")
            name = f"adv-{parsed.attack}-{parsed.epsilon:g}" + (f"-from-{source}" if source else "") + f"-{settings}-{rows}"
            return self.folder / cand / f"{data}-{split}-{name}.npz"
        return self.folder / cand / f"{data}-{split}-{ViewName.parse(view).filename()}.npz"

    def _features_path(self, key: tuple) -> Path | None:
        """Where the features of ``key`` live: ``<predictions file>.features.npy`` beside it."""
        path = self._path(key)
        return None if path is None else path.with_name(f"{path.stem}.features.npy")

    def _read(self, key: tuple, task: Task, embeddings: bool, rows: np.ndarray | None = None) -> Predictions | None:
        """The stored predictions for ``key`` if they are sound; ``None`` (recompute) otherwise."""
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            return _stale(path, f"cannot read it ({error})")
        problem = _problem(arrays, key, task, rows)
        if problem:
            return _stale(path, problem)
        features = None
        if embeddings:
            record = json.loads(str(arrays["about"][()])).get("features")
            if record is None:  # stored without features: compute them (and the logits again) in one pass
                return None
            try:
                record = FeatureRecord.from_json(record)
                if record.shape[:1] != (len(arrays["labels"]),):
                    raise DamagedFeatures(f"its features record has {record.shape[0]} rows, the predictions {len(arrays['labels'])}")
                features = open_features(self._features_path(key), record)
            except DamagedFeatures as error:
                return _stale(path, str(error))
        return Predictions(logits=arrays["logits"], labels=arrays["labels"], split=key[2], view=key[3], embeddings=features,
                           rows=arrays.get("rows"), inputs=arrays.get("inputs"))

    def _write(self, key: tuple, task: Task, predictions: Predictions, features: FeatureRecord | None = None) -> None:
        """Store ``predictions`` (all but the features) under ``key``; ``features``: the record of the features file already written."""
        path = self._path(key)
        if path is None:
            return
        arrays = {"logits": predictions.logits, "labels": predictions.labels}
        for name in ("rows", "inputs"):  # an adversarial view's rows attacked and a few of its inputs
            if getattr(predictions, name) is not None:
                arrays[name] = getattr(predictions, name)
        about = {"format": FORMAT, "candidate": key[0], "data": task.digest(), "split": key[2], "view": key[3], "classes": task.num_classes, "sha256": _checksum(arrays)}
        if features is not None:
            about["features"] = features.as_json()
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays, about=np.array(json.dumps(about, sort_keys=True)))


def _frozen_body(candidate: Candidate) -> str | None:
    """The identity of a candidate's body when all of it is pretrained weights kept frozen, else ``None``.

    Candidates with the same identity compute the same features, so the
    encoder runs once per (split, view) for all of them: the heads differ.
    """
    model, arch = candidate.model, candidate.provenance.arch
    if (candidate.provenance.transforms or not isinstance(model, Classifier) or type(model).forward is not Classifier.forward
            or tuple(getattr(model, "frozen_prefixes", ())) != ("body.",) or not arch.get("frozen") or not arch.get("weights_sha256")):
        return None
    return json.dumps({k: v for k, v in arch.items() if k != "num_classes"}, sort_keys=True, default=str)


class _Copies:
    """An array's row slices as writable copies: torch wraps a read-only (memory-mapped) batch only with a warning."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.array(self.array[rows])


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(n for n in arrays if n != "about"):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _expected_labels(task: Task, split: str, view: str) -> np.ndarray | None:
    """The labels a view of ``split`` has (its rows, in order), or ``None`` when only materialising it would tell."""
    name = ViewName.parse(view)
    try:
        if name.family in ("clean", "corrupt"):
            return np.asarray(task.split(split).y)
        if name.family == "ood":
            if name.kind in ("holdout", "user"):
                found = task.ood if name.kind == "holdout" else task.ood_user
                return None if found is None else np.asarray(found.y)
            return np.full(len(task.split(split).y), -1)
    except Exception:  # a split the task lacks: the computation will say so
        return None
    return None


def _problem(arrays: dict[str, np.ndarray], key: tuple, task: Task, rows: np.ndarray | None = None) -> str | None:
    """What is wrong with predictions read back for ``key`` (candidate, data, split, view), or ``None``.

    ``rows``: the split's rows an adversarial view attacked; the file must hold the same rows and their labels.
    """
    if "about" not in arrays:
        return "it has no record of what it holds (written by an older assay, or not by assay)"
    try:
        about = json.loads(str(arrays["about"][()]))
    except (ValueError, TypeError) as error:
        return f"its record is damaged ({error})"
    if not isinstance(about, dict) or about.get("format") != FORMAT:
        return "it is in another format"
    for field_name, want in (("candidate", key[0]), ("data", task.digest()), ("split", key[2]), ("view", key[3])):
        if about.get(field_name) != want:
            return f"it holds {field_name} {str(about.get(field_name))[:16]!r}, not {str(want)[:16]!r} (copied from elsewhere)"
    logits, labels = arrays.get("logits"), arrays.get("labels")
    if logits is None or labels is None:
        return "logits or labels are missing"
    if logits.ndim != 2 or logits.dtype.kind != "f" or labels.ndim != 1 or labels.dtype.kind not in "iu":
        return f"logits {logits.dtype}{list(logits.shape)} and labels {labels.dtype}{list(labels.shape)} are not (N, K) floats and (N,) integers"
    if logits.shape[1] != task.num_classes or about.get("classes") != task.num_classes:
        return f"it has {logits.shape[1]} classes, the task has {task.num_classes}"
    if rows is not None:
        stored = arrays.get("rows")
        if stored is None or not np.array_equal(stored, rows):
            return "it holds other rows of the split than those attacked"
        try:
            expected = np.asarray(task.split(key[2]).y)[rows]
        except IndexError:
            return "its rows are not in the split"
    else:
        expected = _expected_labels(task, key[2], key[3])
    rows = len(labels) if expected is None else len(expected)
    if len(logits) != rows or len(labels) != rows:
        return f"it has {len(logits)} rows, the {key[2]} split has {rows}"
    if expected is not None and not np.array_equal(labels, expected):
        return f"its labels differ from the {key[2]} split's"
    if about.get("sha256") != _checksum(arrays):
        return "its content does not match its checksum (changed after writing)"
    return None


def _stale(path: Path, problem: str) -> None:
    warnings.warn(f"{path}: {problem}; recomputing these predictions", UserWarning, stacklevel=3)
    return None
