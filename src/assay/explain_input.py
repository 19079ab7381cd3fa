"""``assay explain``: one user input, the prediction a stored candidate makes on it, and its attribution.

The input is read with the run's own Task (rebuilt from the study file the
run folder keeps, with the run's seed, quick or not): an image decoded and
sized as the task's images are (``data/images.py``), a table row encoded by
the task's ``TablePipeline``, a text tokenized by its ``TextPipeline``, a
signal checked against the task's length. The attribution is computed exactly
as the ``explain`` check computes it (``checks/explainers.py``: the same
``Setup``, from the run's ``[checks.explain]`` options), and drawn by the
report's own function (``report/explain_plots.py``), so the picture next to
the run and the report's examples read the same way.

Every bad input is one ``AssayError`` line: the run, the candidate, the file,
its kind against the task's modality, its columns or length, the method.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, SpecError, StoreError, did_you_mean
from .store import Store

TOP = 3
TABLE_SUFFIXES = (".csv", ".tsv")
ARRAY_SUFFIXES = (".npy",)
KINDS = {"image": "an image file (.png, .jpg, ...)", "signal": "a .npy array or a one-line CSV of numbers",
         "tabular": "a CSV file of table rows with the task's columns", "text": "a text file (its whole content is one text)"}


@dataclass(frozen=True)
class Explanation:
    """One explained input.

    Attributes:
        probabilities: class name -> the candidate's probability, highest first.
        method_note: why this method (the run's most faithful for the candidate, or the default).
        notes: how the input was read (resized, truncated, columns ignored ...).
        example: the explained input in the explain check's example format (``report/explain_plots.py``).
        picture: the PNG or HTML written next to the run; ``values``: the same numbers as JSON.
    """

    run_id: str
    candidate: str
    source: Path
    predicted: str
    probabilities: dict[str, float]
    method: str
    method_note: str
    attribution: np.ndarray
    notes: list[str] = field(default_factory=list)
    example: dict[str, Any] = field(default_factory=dict)
    picture: Path | None = None
    values: Path | None = None


@dataclass(frozen=True)
class ReadInput:
    """A user's input as the model takes it (``x``, with a batch axis) and as a person reads it (``shown``)."""

    x: np.ndarray
    shown: dict[str, Any]
    notes: list[str]


def explain_input(store: Store, run: str, candidate: str, path: Path | str, *, method: str | None = None, row: int | None = None,
                  device: str = "cpu") -> Explanation:
    """Predict and explain one input file with a stored candidate, and write the picture next to the run.

    Args:
        store: the runs folder.
        run: a run id, unique prefix or ``latest``.
        candidate: the candidate's name in that run.
        path: the input file (see ``read_input``).
        method: an attribution method (``checks/explainers.REGISTRY``); default
            the run's most faithful for the candidate, else integrated gradients
            (ablation for a candidate without gradients).
        row: the row of a table file to explain (needed when it holds several).

    Raises:
        StoreError: unknown run or candidate. DataError: a missing, unreadable
            or ill-fitting input. SpecError: an unknown method or one the candidate cannot use.
    """
    from .checks.base import CheckContext, make_check
    from .checks.predictions import PredictionCache
    from .models.device import resolve_device

    run_id = store.resolve(run)
    names = sorted(p.stem for p in (store.run_dir(run_id) / "candidates").glob("*.json"))
    if candidate not in names:
        raise StoreError(f"run {run_id}: no candidate '{candidate}'{did_you_mean(candidate, names)}; "
                         f"its candidates: {', '.join(names) or 'none saved yet'}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {'is a folder' if path.is_dir() else 'not found'}; give the input file to explain")
    task, spec, seed = run_task(store, run_id)
    chosen = store.load_candidate(run_id, candidate).to(resolve_device(device))
    caps, model = chosen.capabilities, chosen.model
    method, method_note = _method(store, run_id, candidate, method, model, caps)
    given = read_input(task, path, row=row)

    probs = _probabilities(model, given.x)  # (K,)
    target = int(np.argmax(probs))
    check = make_check("explain", spec.checks.get("explain", {}), where=f"run {run_id} [checks]")
    # The check's own Setup: baseline, references, steps and seed as the run's [checks.explain] made them.
    setup = check.setup(CheckContext(task=task, predictions=PredictionCache(seed=seed), seed=seed), given.x)
    attribution = check.attributions(model, given.x, np.array([target]), setup, [method])[method][0]  # (F,)
    classes = list(task.class_names)
    order = np.argsort(-probs, kind="stable")
    example = {"role": f"{path.name} ({candidate})", "label": "", "predicted": classes[target], "confidence": float(probs[target]),
               "method": method, **_shown(given, attribution, task)}
    out = Explanation(run_id=run_id, candidate=candidate, source=path, predicted=classes[target],
                      probabilities={classes[k]: float(probs[k]) for k in order}, method=method, method_note=method_note,
                      attribution=attribution, notes=given.notes, example=example)
    return write_explanation(store.run_dir(run_id) / "explanations", out)


def run_task(store: Store, run_id: str):
    """``(Task, StudySpec, seed)`` of a stored run, rebuilt from the study file its folder keeps (made small again for a quick run)."""
    from .data.task_table import load_task
    from .spec import parse_study

    meta = store.run_meta(run_id)
    where = meta.get("study_path")
    spec = parse_study(store.study_text(run_id), path=Path(where) if where else None)
    if meta.get("quick"):
        spec = spec.quick_version()
    seed = int(meta.get("seed", spec.seed))
    task = load_task(spec.task, base_dir=spec.base_dir, seed=seed, where=f"run {run_id}: {where or 'study.toml'} [task]")
    return task, spec, seed


def _method(store: Store, run_id: str, candidate: str, asked: str | None, model, caps) -> tuple[str, str]:
    """The method to use and why: asked for, the run's most faithful for the candidate, or the default."""
    from .checks import explainers as ex

    usable = [m for m in ex.REGISTRY if ex.applicable(m, model, caps.differentiable) is None]
    if asked is not None:
        if asked not in ex.REGISTRY:
            raise SpecError(f"--method {asked}: unknown method{did_you_mean(asked, ex.REGISTRY)}; {candidate} can use: {', '.join(usable)}")
        why = ex.applicable(asked, model, caps.differentiable)
        if why:
            lacks = f"; {caps.lacks('differentiable')}" if not caps.differentiable and asked in ex.GRADIENT_METHODS else ""
            raise SpecError(f"--method {asked}: {candidate} cannot use it ({why}{lacks}); methods it can use: {', '.join(usable)}")
        return asked, "asked for"
    gain = next((e for e in store.load_evidence(run_id) if e.check == "explain" and e.metric == "faithfulness_gain"
                 and e.candidate == candidate and e.split == "test"), None)
    best = gain.details.get("best_method") if gain is not None else None
    if best in usable:
        return best, f"the run's most faithful method for {candidate} (gain over random {gain.interval_text()})"
    default = "integrated_gradients" if "integrated_gradients" in usable else "ablation"
    return default, f"the default: the run has no explain evidence for {candidate}" + ("" if caps.differentiable else " (it has no gradients)")


def _probabilities(model, x: np.ndarray) -> np.ndarray:
    """``(K,)`` softmax of the model's logits on one input, through the one batched forward pass."""
    import torch

    from .models.forward import forward_pass

    logits = forward_pass(model, x).logits.double()
    return torch.softmax(logits, dim=1)[0].numpy()


# --- reading the input with the task's pipeline ---------------------------------------------------------------------

def read_input(task, path: Path, *, row: int | None = None) -> ReadInput:
    """One input for ``task`` from ``path``: an image file (image tasks), a table row (tables), a text file (text), a
    ``.npy`` or one-line CSV of numbers (signals).

    Raises:
        DataError: the file is of the wrong kind for the task, unreadable, or does not fit it (columns, length, size).
    """
    from .data.images import IMAGE_SUFFIXES

    suffix = path.suffix.lower()
    found = ("image" if suffix in IMAGE_SUFFIXES else "array" if suffix in ARRAY_SUFFIXES else "table" if suffix in TABLE_SUFFIXES
             else "parquet" if suffix in (".parquet", ".pq") else "text")
    accepted = {"image": ("image",), "signal": ("array", "table", "text"), "tabular": ("table", "parquet"), "text": ("text", "table")}[task.modality]
    if found not in accepted:
        raise DataError(f"{path}: {_kind_text(found, suffix)}, but task '{task.name}' is {_a(task.modality)} task; give {KINDS[task.modality]}")
    if row is not None and task.modality != "tabular":
        raise DataError(f"--row {row}: only a table file has rows; task '{task.name}' is {_a(task.modality)} task")
    reader = {"image": _read_image, "signal": _read_signal, "tabular": _read_row, "text": _read_text}[task.modality]
    return reader(task, path, row) if task.modality == "tabular" else reader(task, path)


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _kind_text(found: str, suffix: str) -> str:
    return {"image": f"an image file ({suffix})", "array": "a numpy array (.npy)", "table": f"a table ({suffix})",
            "parquet": "a parquet table", "text": f"a text file ({suffix or 'no suffix'})"}[found]


def _input_shape(task) -> tuple[int, ...]:
    x = task.train.x
    return tuple(x.shape[1:]) if hasattr(x, "shape") else tuple(np.asarray(x[:1]).shape[1:])


def _read_image(task, path: Path) -> ReadInput:
    from PIL import Image

    from .data.images import image_header, read_image

    channels, height, width = _input_shape(task)
    (w, h), _ = image_header(path)  # a file too large to decode here is refused from its header
    mode = "L" if channels == 1 else "RGB"
    img = read_image(path, mode)
    notes = [f"read as {'grey' if mode == 'L' else 'RGB'} {width}x{height}, pixel values / 255, as the task's images"]
    if (w, h) != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
        notes[0] += f" (resized from {w}x{h}, bilinear)"
    pixels = np.asarray(img, dtype=np.float32).reshape(height, width, -1).transpose(2, 0, 1) / 255.0  # (C, H, W)
    return ReadInput(pixels[None], {"shape": [channels, height, width], "values": pixels.ravel().tolist()}, notes)


def _read_signal(task, path: Path) -> ReadInput:
    channels, length = _input_shape(task)
    if path.suffix.lower() in ARRAY_SUFFIXES:
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"{path}: cannot read the array ({str(error).splitlines()[0] or type(error).__name__}); save it with numpy.save") from None
    else:
        values = _numbers_line(path)
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise DataError(f"{path}: holds {values.dtype} values, not numbers; give the signal's {length} numbers")
    fits = values.size == channels * length and values.squeeze().ndim <= 2
    if not fits:
        raise DataError(f"{path}: holds {values.size} values (shape {tuple(values.shape)}); task '{task.name}' takes signals of "
                        f"{length} steps x {channels} channel{'s' if channels > 1 else ''}: give {channels * length} numbers")
    x = values.astype(np.float32).reshape(1, channels, length)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: holds non-finite values (NaN or infinity); give finite numbers")
    return ReadInput(x, {"shape": [channels, length], "values": x.ravel().tolist()}, [])


def _numbers_line(path: Path) -> np.ndarray:
    text = _text_of(path)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise DataError(f"{path}: holds {len(lines)} non-empty lines; give the signal as one line of numbers separated by commas")
    try:
        return np.array([float(v) for v in lines[0].replace(";", ",").split(",") if v.strip()], dtype=np.float64)
    except ValueError as error:
        raise DataError(f"{path}: not a line of numbers ({error}); give the signal as numbers separated by commas") from None


def _read_row(task, path: Path, row: int | None) -> ReadInput:
    from .data.sources import read_table

    pipeline = task.pipeline
    frame = read_table(path)
    frame.columns = [str(c) for c in frame.columns]
    missing = [c for c in pipeline.columns if c not in frame.columns]
    if missing:
        extra = [c for c in frame.columns if c not in pipeline.columns]
        close = difflib.get_close_matches(missing[0], extra, n=1, cutoff=0.6)
        hint = f" (found '{close[0]}': misspelt?)" if close else ""
        raise DataError(f"{path}: no column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)}{hint}; "
                        f"task '{task.name}' takes the columns {', '.join(pipeline.columns)}")
    if not len(frame):
        raise DataError(f"{path}: holds no rows; give one row of values under the header")
    if row is None and len(frame) > 1:
        raise DataError(f"{path}: holds {len(frame)} rows; pick one with --row K (0 to {len(frame) - 1})")
    k = 0 if row is None else row
    if not 0 <= k < len(frame):
        raise DataError(f"--row {k}: {path} holds {len(frame)} row{'s' if len(frame) > 1 else ''}; give --row from 0 to {len(frame) - 1}")
    one = frame.iloc[[k]][pipeline.columns].reset_index(drop=True)
    notes = []
    ignored = [c for c in frame.columns if c not in pipeline.columns]
    if ignored:
        notes.append(f"columns not used by the task ignored: {', '.join(ignored)}")
    for column in pipeline.numeric:
        value = one[column].iloc[0]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{path}: column '{column}' holds {value!r} in row {k}, not a number; give a number (or leave it empty)") from None
        if not np.isfinite(number) and not np.isnan(number):
            raise DataError(f"{path}: column '{column}' holds {value!r} in row {k}; give a finite number")
        if np.isnan(number):
            notes.append(f"'{column}' is empty: read as the training median, {pipeline.median[column]:g}")
    one[pipeline.numeric] = one[pipeline.numeric].astype(float)
    for column, categories in pipeline.categorical.items():
        value = one[column].iloc[0]
        if value == value and str(value) not in categories:  # NaN != NaN: a missing value is its own note
            notes.append(f"'{column}' = {value!r} was not seen in training: read as <other>")
    x = pipeline.transform(one)  # (1, width)
    shown = {"columns": list(pipeline.columns), "values": [str(one[c].iloc[0]) for c in pipeline.columns]}
    return ReadInput(x, shown, notes)


def _read_text(task, path: Path) -> ReadInput:
    text = _text_of(path)
    if not text.strip():
        raise DataError(f"{path}: holds no text; give a file whose content is the text to classify")
    pipeline = task.pipeline
    x = pipeline.encode([text])  # (1, T)
    pad = getattr(pipeline, "pad_id", 0)
    kept = x[0] != pad
    notes = []
    if kept.all():
        notes.append(f"filled all {x.shape[1]} token positions: text beyond them is cut, as the task cuts its own")
    return ReadInput(x, {"ids": x[0][kept].tolist()}, notes)


def _text_of(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise DataError(f"{path}: holds binary bytes, not text; give a UTF-8 text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") from None


def _shown(given: ReadInput, attribution: np.ndarray, task) -> dict[str, Any]:
    """The example's ``input`` and ``attribution`` as the check records them (text: padding dropped, ids as token texts)."""
    if "ids" not in given.shown:
        return {"input": given.shown, "attribution": attribution.tolist()}
    pad = getattr(task.pipeline, "pad_id", 0)
    kept = given.x[0] != pad
    names = task.pipeline.token_names(given.x[0][kept])
    return {"input": {"tokens": [names[int(i)] for i in given.x[0][kept]]}, "attribution": attribution[kept].tolist()}


def write_explanation(folder: Path, found: Explanation) -> Explanation:
    """Write the picture (PNG, or HTML for text) and the numbers (JSON) into ``folder``, atomically; return them with their paths."""
    from dataclasses import replace

    from ._io import write_text
    from .report.explain_plots import write_attribution

    stem = folder / f"{found.candidate}-{found.source.stem}-{found.method}"
    picture = write_attribution(found.example, stem)
    values = stem.with_name(stem.name + ".json")
    record = {"run": found.run_id, "candidate": found.candidate, "input": str(found.source), "predicted": found.predicted,
              "probabilities": found.probabilities, "method": found.method, "method_note": found.method_note, "notes": found.notes,
              "example": found.example}
    write_text(values, json.dumps(record, indent=1, allow_nan=True) + "\n")
    return replace(found, picture=picture, values=values)


def summary(found: Explanation) -> str:
    """What ``assay explain`` prints: the prediction, its top classes, the method and where the picture is."""
    top = list(found.probabilities.items())[:TOP]
    lines = [f"input:      {found.source}" + "".join(f"\n            {n}" for n in found.notes),
             f"candidate:  {found.candidate} (run {found.run_id})",
             f"predicted:  {found.predicted} (probability {found.probabilities[found.predicted]:.3f})",
             f"top {len(top)}:      " + ", ".join(f"{name} {p:.3f}" for name, p in top),
             f"method:     {found.method}: {found.method_note}",
             f"written:    {found.picture}",
             f"numbers:    {found.values}"]
    return "\n".join(lines)
