"""Checked reads of the files in a run folder.

Nothing read back is trusted as it is: ``run.json``, ``study.toml``, the
candidate descriptions, ``evidence.jsonl`` and ``decision.json`` are each
checked against their schema and against the checksums ``run.json`` records.
A bad file is named in a one-line StoreError that ends with the fix (``REDO``).
The callers decide what a bad file means: the Store raises, the index leaves
the run out with a warning, a resumed run computes it again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..errors import StoreError
from ..evidence import Evidence
from ..select import Decision

STATUSES = ("running", "interrupted", "finished")
REDO = "the run folder is damaged; run the study again with --new (or restore the file from a backup)"


def reason(error: BaseException) -> str:
    """An exception's first line (or its type when it has no text), to quote inside a one-line message."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path``; ``what`` names the file in the message when it is missing or damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path}: the run's {what} is missing; {REDO}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise StoreError(f"{path}: the run's {what} is damaged ({reason(error)}); {REDO}") from None


def read_meta(folder: Path, run_id: str) -> dict[str, Any]:
    """``run.json`` of the run ``run_id`` in ``folder``, with its id, status, config hash and creation time checked.

    Raises:
        StoreError: the file is missing, damaged, or another run's.
    """
    path = folder / "run.json"
    meta = read_json(path, "run record")
    problem = None
    if not isinstance(meta, dict):
        problem = "is not a JSON object"
    elif meta.get("id") != run_id:
        problem = f"belongs to run {meta.get('id')!r}, not {run_id!r} (copied from another run)"
    elif meta.get("status") not in STATUSES:
        problem = f"has status {meta.get('status')!r}, not one of {', '.join(STATUSES)}"
    elif not all(isinstance(meta.get(k), str) for k in ("config_hash", "created")):
        problem = "lacks its config_hash or created time"
    if problem:
        raise StoreError(f"{path}: {problem}; {REDO}")
    return meta


def read_study(folder: Path) -> str:
    """The study file copied into the run folder (``study.toml``)."""
    path = folder / "study.toml"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StoreError(f"{path}: cannot read the run's study file ({reason(error)}); {REDO}") from None


def read_description(path: Path) -> dict[str, Any]:
    """A candidate's description (``candidates/<name>.json``), checked to name that candidate and carry an id."""
    data = read_json(path, "candidate description")
    if not isinstance(data, dict) or data.get("name") != path.stem or not isinstance(data.get("id"), str):
        raise StoreError(f"{path}: not the description of candidate '{path.stem}' (its name or id is missing or different); {REDO}")
    return data


def load_evidence(folder: Path, run_id: str) -> list[Evidence]:
    """The run's evidence, or none before its checks wrote any; see ``read_evidence``."""
    if not (folder / "evidence.jsonl").is_file():
        return []
    return read_evidence(folder, run_id)


def read_evidence(folder: Path, run_id: str) -> list[Evidence]:
    """``evidence.jsonl``, checked record by record and against what the run's checks recorded in ``run.json``.

    Raises:
        StoreError: the file is missing, damaged, changed, or not this run's.
    """
    path = folder / "evidence.jsonl"
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise StoreError(f"{path}: cannot read it ({reason(error)}); {REDO}") from None
    checks = read_meta(folder, run_id).get("checks")
    if isinstance(checks, dict) and checks.get("evidence_sha256") != hashlib.sha256(raw).hexdigest():
        raise StoreError(f"{path}: differs from what the run's checks wrote (checksum in run.json); {REDO}")
    known = None  # the run's candidates, when its checks recorded them: evidence about others was copied in
    if isinstance(checks, dict) and isinstance(checks.get("candidates"), dict):
        known = set(checks["candidates"])
    out = []
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = Evidence.from_dict(json.loads(line))
        except (ValueError, TypeError) as error:
            raise StoreError(f"{path}:{n}: not an evidence record ({reason(error)}); {REDO}") from None
        problem = evidence_problem(record, known)
        if problem:
            raise StoreError(f"{path}:{n}: {problem}; {REDO}")
        out.append(record)
    if isinstance(checks, dict) and checks.get("records") != len(out):
        raise StoreError(f"{path}: holds {len(out)} records, its checks wrote {checks.get('records')}; {REDO}")
    return out


def evidence_problem(e: Evidence, candidates: set[str] | None) -> str | None:
    """What is wrong with one evidence record read back (names, numbers, candidate, details), or ``None``."""
    if not all(isinstance(v, str) and v for v in (e.check, e.metric, e.candidate, e.split, e.view)):
        return "check, metric, candidate, split and view must be names"
    for name in ("value", "low", "high"):
        v = getattr(e, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"{name} {v!r} is not a number"
    if candidates is not None and e.candidate not in candidates:
        return f"candidate '{e.candidate}' is not one of this run's (copied from another run)"
    if not isinstance(e.details, dict) or not isinstance(e.figures, tuple) or not all(isinstance(f, str) for f in e.figures):
        return "details must be an object and figures a list of names"
    return None


def load_decision(folder: Path, run_id: str) -> Decision | None:
    """The run's decision, checked against the checksum recorded with it; ``None`` before one is made.

    Raises:
        StoreError: the file is damaged, changed, or names candidates the run does not have.
    """
    path = folder / "decision.json"
    if not path.is_file():
        return None
    recorded = read_meta(folder, run_id).get("decision_sha256")
    if recorded is not None and recorded != sha256_file(path):
        raise StoreError(f"{path}: differs from the decision the run recorded (checksum in run.json); {REDO}")
    data = read_json(path, "decision")
    try:
        decision = Decision.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise StoreError(f"{path}: not a decision ({reason(error)}); {REDO}") from None
    if decision.chosen is not None and not (folder / "candidates" / f"{decision.chosen}.json").is_file():
        raise StoreError(f"{path}: chooses candidate '{decision.chosen}', which this run does not have (copied from another run); {REDO}")
    return decision
