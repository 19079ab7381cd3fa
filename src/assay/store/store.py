"""Run folders and the index database.

Each run is a folder ``runs/<id>/`` holding everything needed to rebuild its
report: the resolved study file, ``run.json``, candidates (safetensors + JSON),
predictions, ``evidence.jsonl``, ``decision.json``, the report and the model
card. ``runs/index.db`` (SQLite) indexes runs, candidates and evidence for
listing and querying; it holds nothing the folders do not, so a deleted or
damaged index is rebuilt from them.

The store keeps its word:

* Files are written atomically, with the user's umask; the index in
  transactions. An interrupted run leaves either the old or the new state.
* One process per run: ``open_run`` holds an exclusive lock on
  ``runs/<id>/.lock`` for the run's whole life (``runs/.lock`` while it picks
  or creates the run), so a second identical command is refused in one line
  instead of training into the same folder. A run marked ``running`` whose
  lock nobody holds was killed: it reads as ``interrupted``.
* A run resumes where it stopped. When its checks finished (``run.json``
  records ``checks`` with the evidence file's checksum and the candidates'
  content hashes), a resumed run goes straight to the decision and report.
* Nothing read back is trusted as it is: ``run.json``, ``evidence.jsonl``,
  ``decision.json`` and the candidates are checked against their schema and
  the checksums ``run.json`` records; a bad one is named in a one-line
  ``StoreError`` with the fix (or, for a resumed run, recomputed).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import sqlite3
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._io import atomic_path, remove_stale_tmp, sha256_file, write_json, write_text
from ..evidence import Evidence
from ..errors import AssayError, StoreError, did_you_mean
from ..models.candidate import Candidate
from ..select import Decision

INDEX = "index.db"
LOCK = ".lock"
STATUSES = ("running", "interrupted", "finished")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, study_path TEXT, config_hash TEXT, data_hash TEXT,
    status TEXT, created TEXT, finished TEXT, chosen TEXT, exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS candidates (
    run_id TEXT, name TEXT, id TEXT, recipe TEXT, parent TEXT, parameters INTEGER,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS evidence (
    run_id TEXT, candidate TEXT, check_name TEXT, metric TEXT, split TEXT, view TEXT,
    value REAL, low REAL, high REAL,
    PRIMARY KEY (run_id, candidate, check_name, metric, split, view)
);
"""
_COLUMNS = {
    "runs": ("id", "name", "study_path", "config_hash", "data_hash", "status", "created", "finished", "chosen", "exit_code"),
    "candidates": ("run_id", "name", "id", "recipe", "parent", "parameters"),
    "evidence": ("run_id", "candidate", "check_name", "metric", "split", "view", "value", "low", "high"),
}


def now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class Store:
    """Run folders under ``root`` and the SQLite index ``root/index.db``.

    Args:
        root: the runs folder (``--out``).
        timeout: seconds to wait for an index another process is writing.
    """

    def __init__(self, root: Path | str = "runs", *, timeout: float = 30.0) -> None:
        self.root = Path(root)
        self.timeout = timeout
        self._checked = False  # the index was found sound (or rebuilt) by this Store
        self._open: dict[str, RunHandle] = {}  # runs this Store holds the lock of
        self._loaded: dict[tuple[str, str], Candidate] = {}

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    # --- the runs folder and the index -------------------------------------
    def _where(self) -> str:
        return f"runs folder {self.root}"

    def _ensure_root(self) -> None:
        """The runs folder exists and can be written, or a one-line StoreError says why."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self._where()}: is a file, not a folder; give --out a folder (it is created when missing)")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"{self._where()}: cannot create it ({error.strerror or error}); give --out a folder you can write to") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"{self._where()}: is read-only; give --out a folder you can write to")

    def _readable(self) -> bool:
        """Whether the runs folder exists (a file in its place is an error)."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self._where()}: is a file, not a folder; give --out the runs folder")
        return self.root.is_dir()

    @contextmanager
    def _index(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection to the index (a transaction when writing), rebuilt first when missing or damaged.

        A locked, read-only or unwritable index is a one-line StoreError.
        """
        path = self.root / INDEX
        if write:
            self._ensure_root()
        elif not self._readable():
            with closing(sqlite3.connect(":memory:")) as con:
                con.executescript(_SCHEMA)
                yield con
            return
        writable = os.access(self.root, os.W_OK)
        try:
            if not self._checked or not path.exists():  # deleted under a running study: rebuilt too
                problem = _index_problem(path, self.timeout)
                if problem is not None:
                    if not writable:  # read what the folders hold without writing anything
                        if write:
                            raise StoreError(f"{path}: {problem} and the folder is read-only; give --out a folder you can write to")
                        with closing(sqlite3.connect(":memory:")) as con:
                            con.executescript(_SCHEMA)
                            self._fill(con)
                            yield con
                        return
                    self._rebuild(path, problem)
                self._checked = True
            con = sqlite3.connect(path if writable else f"file:{path}?mode=ro", timeout=self.timeout, uri=not writable)
            with closing(con):
                if write:
                    with con:
                        yield con
                else:
                    yield con
        except sqlite3.OperationalError as error:
            raise _index_error(path, error, self.timeout) from None

    def _rebuild(self, path: Path, problem: str) -> None:
        """Write a new index from the run folders, over a missing or damaged one."""
        if path.exists():
            warnings.warn(f"{path}: {problem}; rebuilding it from the run folders", UserWarning, stacklevel=4)
        with atomic_path(path) as tmp:
            with closing(sqlite3.connect(tmp)) as con, con:
                con.executescript(_SCHEMA)
                self._fill(con)

    def rebuild_index(self) -> int:
        """Rebuild ``index.db`` from the run folders; return how many runs it indexes."""
        self._ensure_root()
        self._rebuild(self.root / INDEX, "rebuilt on request")
        self._checked = True
        return len(self.list_runs())

    def _fill(self, con: sqlite3.Connection) -> None:
        """Index every run folder under the root."""
        for run_id in sorted(self._folders()):
            self._index_run(con, run_id)

    def _folders(self) -> set[str]:
        """The run folders under the root: those holding a run record or a study file."""
        return {p.name for p in self.root.iterdir() if p.is_dir() and ((p / "run.json").exists() or (p / "study.toml").exists())}

    def _index_run(self, con: sqlite3.Connection, run_id: str) -> None:
        """(Re)index one run folder; what cannot be read is left out, with a warning."""
        folder = self.run_dir(run_id)
        for table in _COLUMNS:
            con.execute(f"DELETE FROM {table} WHERE {'id' if table == 'runs' else 'run_id'} = ?", (run_id,))
        if not folder.is_dir():  # removed by hand: forgotten
            return
        try:
            meta = self._read_meta(run_id)
        except AssayError as error:
            warnings.warn(f"{error} (run left out of the index)", UserWarning, stacklevel=3)
            return
        con.execute(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * 10)})", tuple(meta.get(c) for c in _COLUMNS["runs"]))
        for path in sorted((folder / "candidates").glob("*.json")):
            try:
                d = self._read_description(path)
            except AssayError as error:
                warnings.warn(f"{error} (candidate left out of the index)", UserWarning, stacklevel=3)
                continue
            con.execute("INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?)",
                        (run_id, d["name"], d["id"], d.get("recipe"), d.get("parent"), d.get("parameters")))
        try:
            _insert_evidence(con, run_id, self.load_evidence(run_id))
        except AssayError as error:
            warnings.warn(f"{error} (evidence left out of the index)", UserWarning, stacklevel=3)

    # --- one process per run -----------------------------------------------
    @contextmanager
    def _root_lock(self) -> Iterator[None]:
        """Held while a run is picked or created, so two processes never pick the same new id or run."""
        self._ensure_root()
        fd = _open_lock(self.root / LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def open_run(self, name: str, config_hash: str, meta: Callable[[], dict[str, Any]] | dict[str, Any], study_text: str, *, resume: bool = True) -> RunHandle:
        """Resume the newest unfinished run of this study, or create a new one, and hold its lock.

        Use it as a context manager: leaving the block normally marks the run
        finished (if it recorded a decision); leaving it by an exception,
        KeyboardInterrupt included, marks it interrupted. Stale temporary files a
        killed process left in a resumed run's folder are removed.

        Args:
            name: the study's name, the start of a new run's id.
            config_hash: the study's hash (text and seed); a run resumes only the same hash.
            meta: ``run.json``'s content for a new run (or a function making it).
            study_text: the study file, copied into the run folder.
            resume: ``False`` always starts a new run (``--new``).

        Raises:
            StoreError: another process is running this study's unfinished run,
                or the runs folder cannot be written.
        """
        with self._root_lock():
            remove_stale_tmp(self.root, recursive=False)  # e.g. an index rebuild a killed process left
            found = self.find_resumable(config_hash) if resume else None
            run_id = found if found is not None else self._new_id(name, config_hash)
            handle = RunHandle(self, run_id, resumed=found is not None)
            handle._acquire()
            try:
                if handle.resumed:
                    remove_stale_tmp(self.run_dir(run_id))
                    self._set_status(run_id, "running")  # a damaged run.json is named here, before any work
                else:
                    self._create(run_id, meta() if callable(meta) else meta, study_text)
            except BaseException:
                handle.release()
                if not handle.resumed:  # the folder is ours and holds nothing yet
                    shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
                raise
        return handle

    def _new_id(self, name: str, config_hash: str) -> str:
        """``<name>-<date>-<time>-<hash prefix>``, with ``-2``, ``-3``... when that folder exists; the folder is made."""
        base = f"{name}-{datetime.now():%Y%m%d-%H%M%S}-{config_hash[:4]}"
        for n in range(1, 10_000):
            run_id = base if n == 1 else f"{base}-{n}"
            try:
                self.run_dir(run_id).mkdir()
                return run_id
            except FileExistsError:
                continue
        raise StoreError(f"{self._where()}: 10,000 runs named {base}; clean up the runs folder")

    def is_running(self, run_id: str) -> bool:
        """Whether a process (this one included) holds the run's lock now."""
        path = self.run_dir(run_id) / LOCK
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def _status(self, run_id: str, recorded: str | None) -> str | None:
        return "interrupted" if recorded == "running" and not self.is_running(run_id) else recorded

    # --- writing -----------------------------------------------------------
    def create_run(self, run_id: str, meta: dict[str, Any], study_text: str) -> Path:
        """Make the folder ``run_id`` (it must not exist), write ``study.toml`` and ``run.json``, and index it.

        Prefer ``open_run``, which also picks a unique id and holds the run's lock.
        """
        self._ensure_root()
        try:
            self.run_dir(run_id).mkdir()
        except FileExistsError:
            raise StoreError(f"{self.run_dir(run_id)}: a run with this id exists; start the run with a new id") from None
        return self._create(run_id, meta, study_text)

    def _create(self, run_id: str, meta: dict[str, Any], study_text: str) -> Path:
        folder = self.run_dir(run_id)
        write_text(folder / "study.toml", study_text)
        meta = {**meta, "id": run_id, "status": "running", "created": now()}
        write_json(folder / "run.json", meta)
        with self._index(write=True) as con:
            con.execute(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * 10)})", tuple(meta.get(c) for c in _COLUMNS["runs"]))
        return folder

    def find_resumable(self, config_hash: str) -> str | None:
        """The newest unfinished run of the same study, if any.

        Raises:
            StoreError: another process is running it now.
        """
        with self._index() as con:
            row = con.execute(
                "SELECT id FROM runs WHERE config_hash = ? AND status != 'finished' ORDER BY created DESC, id DESC LIMIT 1", (config_hash,)
            ).fetchone()
        if not row or not self.run_dir(row[0]).is_dir():
            return None
        if self.is_running(row[0]):
            raise StoreError(f"{self.run_dir(row[0])}: another assay process ({_holder(self.run_dir(row[0]) / LOCK)}) is running this study now; "
                             "wait for it to finish, or pass --new to start a separate run")
        return row[0]

    def _set_status(self, run_id: str, status: str, **fields: Any) -> None:
        meta = {**self._read_meta(run_id), "status": status, **fields}
        write_json(self.run_dir(run_id) / "run.json", meta)
        with self._index(write=True) as con:
            con.execute("UPDATE runs SET status = ?, finished = ?, chosen = ?, exit_code = ? WHERE id = ?",
                        (status, meta.get("finished"), meta.get("chosen"), meta.get("exit_code"), run_id))

    def save_candidate(self, run_id: str, candidate: Candidate) -> None:
        candidate.save(self.run_dir(run_id) / "candidates")
        p = candidate.provenance
        with self._index(write=True) as con:
            con.execute(
                "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, candidate.name, candidate.id, p.recipe, p.parent, candidate.parameter_count()),
            )

    def has_candidate(self, run_id: str, name: str) -> bool:
        """Whether a sound saved candidate ``name`` is in the run (a damaged one warns and counts as absent, so it is made again)."""
        folder = self.run_dir(run_id) / "candidates"
        if not ((folder / f"{name}.json").is_file() and (folder / f"{name}.safetensors").is_file()):
            return False
        try:
            self._loaded[(run_id, name)] = Candidate.load(folder, name)
        except Exception as error:  # damaged or tampered: never trusted, always safe to make again
            warnings.warn(f"{folder / name}: cannot load the saved candidate ({_reason(error)}); making it again", UserWarning, stacklevel=2)
            return False
        return True

    def load_candidate(self, run_id: str, name: str) -> Candidate:
        found = self._loaded.pop((run_id, name), None)
        return found if found is not None else Candidate.load(self.run_dir(run_id) / "candidates", name)

    def save_evidence(self, run_id: str, evidence: Sequence[Evidence]) -> None:
        """Replace the run's evidence with ``evidence`` (file and index) and record that its checks are done.

        The record in ``run.json`` (``checks``: the file's checksum, its record
        count and the content hash of every saved candidate) is what lets a
        resumed run skip the checks, and what ``load_evidence`` verifies.
        """
        folder = self.run_dir(run_id)
        lines = "".join(json.dumps(e.to_dict(), sort_keys=True, default=_plain) + "\n" for e in evidence)
        write_text(folder / "evidence.jsonl", lines)
        with self._index(write=True) as con:
            con.execute("DELETE FROM evidence WHERE run_id = ?", (run_id,))
            _insert_evidence(con, run_id, evidence)
        ids = {p.stem: self._read_description(p)["id"] for p in sorted((folder / "candidates").glob("*.json"))}
        checks = {"done": now(), "records": len(evidence), "evidence_sha256": hashlib.sha256(lines.encode()).hexdigest(), "candidates": ids}
        write_json(folder / "run.json", {**self._read_meta(run_id), "checks": checks})

    def checks_done(self, run_id: str, candidates: Iterable[Candidate]) -> list[Evidence] | None:
        """The run's evidence if its checks finished on exactly these candidates; ``None`` (run them) otherwise.

        A run killed after its checks resumes at the decision and the report.
        Evidence that does not match its record is not trusted: a warning, and
        the checks run again.
        """
        checks = self._read_meta(run_id).get("checks")
        if not isinstance(checks, dict):
            return None
        if checks.get("candidates") != {c.name: c.id for c in candidates}:
            return None
        try:
            return self._read_evidence(run_id)
        except StoreError as error:
            warnings.warn(f"{error}; running the checks again", UserWarning, stacklevel=2)
            return None

    def finish_run(self, run_id: str, decision: Decision, exit_code: int) -> None:
        """Record the decision. Inside ``open_run`` the run is marked finished when its block ends (after the report)."""
        path = self.run_dir(run_id) / "decision.json"
        write_json(path, decision.to_dict())
        fields = {"chosen": decision.chosen, "exit_code": exit_code, "decision_sha256": sha256_file(path)}
        handle = self._open.get(run_id)
        if handle is not None:
            handle.decided = fields
            write_json(self.run_dir(run_id) / "run.json", {**self._read_meta(run_id), **fields})
        else:
            self._set_status(run_id, "finished", finished=now(), **fields)

    # --- reading -----------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """A run id from an id, a unique prefix, or ``latest``."""
        runs = [r["id"] for r in self.list_runs()]
        if ref == "latest" and runs:
            return runs[0]
        if ref in runs:
            return ref
        matches = [r for r in runs if r.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not runs:
            raise StoreError(f"{self.root}: no runs stored here; run a study first (assay demo) or pass --out")
        if len(matches) > 1:
            raise StoreError(f"run '{ref}': matches {len(matches)} runs ({', '.join(matches[:3])}, ...); give more of the id")
        raise StoreError(f"run '{ref}': not found in {self.root}{did_you_mean(ref, runs)}; list runs with 'assay runs'")

    def list_runs(self) -> list[dict[str, Any]]:
        """Every indexed run, newest first; a run killed while running reads as ``interrupted``."""
        if not self._readable():
            return []
        with self._index() as con:
            indexed = {r[0] for r in con.execute("SELECT id FROM runs")}
        folders = self._folders()
        if indexed != folders and os.access(self.root, os.W_OK):  # folders removed or added by hand
            with self._index(write=True) as con:
                for run_id in indexed ^ folders:
                    self._index_run(con, run_id)
        with self._index() as con:
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY created DESC, id DESC") if r["id"] in folders]
        for row in rows:
            row["status"] = self._status(row["id"], row["status"])
        return rows

    def run_meta(self, run_id: str) -> dict[str, Any]:
        """``run.json``, checked; ``status`` reads ``interrupted`` for a run no process holds."""
        meta = self._read_meta(run_id)
        return {**meta, "status": self._status(run_id, meta["status"])}

    def _read_meta(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(run_id) / "run.json"
        meta = _read_json(path, "run record")
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
            raise StoreError(f"{path}: {problem}; {_REDO}")
        return meta

    def study_text(self, run_id: str) -> str:
        path = self.run_dir(run_id) / "study.toml"
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(f"{path}: cannot read the run's study file ({_reason(error)}); {_REDO}") from None

    def candidate_descriptions(self, run_id: str, order: Iterable[str]) -> list[dict[str, Any]]:
        folder = self.run_dir(run_id) / "candidates"
        return [self._read_description(folder / f"{name}.json") for name in order if (folder / f"{name}.json").is_file()]

    def _read_description(self, path: Path) -> dict[str, Any]:
        data = _read_json(path, "candidate description")
        if not isinstance(data, dict) or data.get("name") != path.stem or not isinstance(data.get("id"), str):
            raise StoreError(f"{path}: not the description of candidate '{path.stem}' (its name or id is missing or different); {_REDO}")
        return data

    def load_evidence(self, run_id: str) -> list[Evidence]:
        """The run's evidence, checked against the checksum its checks recorded.

        Raises:
            StoreError: the file is damaged, changed, or not this run's.
        """
        if not (self.run_dir(run_id) / "evidence.jsonl").is_file():
            return []
        return self._read_evidence(run_id)

    def _read_evidence(self, run_id: str) -> list[Evidence]:
        path = self.run_dir(run_id) / "evidence.jsonl"
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise StoreError(f"{path}: cannot read it ({_reason(error)}); {_REDO}") from None
        checks = self._read_meta(run_id).get("checks")
        if isinstance(checks, dict) and checks.get("evidence_sha256") != hashlib.sha256(raw).hexdigest():
            raise StoreError(f"{path}: differs from what the run's checks wrote (checksum in run.json); {_REDO}")
        known = None
        if isinstance(checks, dict) and isinstance(checks.get("candidates"), dict):
            known = set(checks["candidates"])
        out = []
        for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = Evidence.from_dict(json.loads(line))
            except (ValueError, TypeError) as error:
                raise StoreError(f"{path}:{n}: not an evidence record ({_reason(error)}); {_REDO}") from None
            problem = _evidence_problem(record, known)
            if problem:
                raise StoreError(f"{path}:{n}: {problem}; {_REDO}")
            out.append(record)
        if isinstance(checks, dict) and checks.get("records") != len(out):
            raise StoreError(f"{path}: holds {len(out)} records, its checks wrote {checks.get('records')}; {_REDO}")
        return out

    def load_decision(self, run_id: str) -> Decision | None:
        """The run's decision, checked against the checksum recorded with it; ``None`` before one is made.

        Raises:
            StoreError: the file is damaged, changed, or names candidates the run does not have.
        """
        path = self.run_dir(run_id) / "decision.json"
        if not path.is_file():
            return None
        recorded = self._read_meta(run_id).get("decision_sha256")
        if recorded is not None and recorded != sha256_file(path):
            raise StoreError(f"{path}: differs from the decision the run recorded (checksum in run.json); {_REDO}")
        data = _read_json(path, "decision")
        try:
            decision = Decision.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(f"{path}: not a decision ({_reason(error)}); {_REDO}") from None
        if decision.chosen is not None and not (self.run_dir(run_id) / "candidates" / f"{decision.chosen}.json").is_file():
            raise StoreError(f"{path}: chooses candidate '{decision.chosen}', which this run does not have (copied from another run); {_REDO}")
        return decision


class RunHandle:
    """A run this process holds the lock of (what ``Store.open_run`` returns).

    Attributes:
        id: the run id; resumed: whether an unfinished run was continued.
    """

    def __init__(self, store: Store, run_id: str, *, resumed: bool) -> None:
        self.store, self.id, self.resumed = store, run_id, resumed
        self.decided: dict[str, Any] | None = None
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r}, resumed={self.resumed})"

    @property
    def folder(self) -> Path:
        return self.store.run_dir(self.id)

    def _acquire(self) -> None:
        path = self.folder / LOCK
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(f"{self.folder}: another assay process ({_holder(path)}) is running this run now; "
                             "wait for it to finish, or pass --new to start a separate run") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd
        self.store._open[self.id] = self

    def release(self) -> None:
        self.store._open.pop(self.id, None)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, kind, error, tb) -> None:
        try:
            if kind is None and self.decided is not None:
                self.store._set_status(self.id, "finished", finished=now(), **self.decided)
            elif kind is not None:
                try:  # best effort: the error that stopped the run is the one to report
                    self.store._set_status(self.id, "interrupted")
                except Exception:
                    pass
        finally:
            self.release()


_REDO = "the run folder is damaged; run the study again with --new (or restore the file from a backup)"


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise StoreError(f"{path}: cannot open the lock file ({error.strerror or error}); give --out a folder you can write to") from None


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown pid"
    except OSError:
        return "unknown pid"


def _reason(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path}: the run's {what} is missing; {_REDO}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise StoreError(f"{path}: the run's {what} is damaged ({_reason(error)}); {_REDO}") from None


def _evidence_problem(e: Evidence, candidates: set[str] | None) -> str | None:
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


def _insert_evidence(con: sqlite3.Connection, run_id: str, evidence: Iterable[Evidence]) -> None:
    con.executemany(
        "INSERT OR REPLACE INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(run_id, e.candidate, e.check, e.metric, e.split, e.view, _real(e.value), _real(e.low), _real(e.high)) for e in evidence],
    )


def _real(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _index_problem(path: Path, timeout: float) -> str | None:
    """Why the index cannot be used as it is (missing, not SQLite, wrong tables), or ``None``.

    A locked index is not a problem here: the caller waits for it, then says so.
    """
    if not path.exists():
        return "missing"
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)) as con:
            if con.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                return "damaged (integrity check failed)"
            for table, columns in _COLUMNS.items():
                found = tuple(r[1] for r in con.execute(f"PRAGMA table_info({table})"))
                if found != columns:
                    return f"not an assay index (table {table} has columns {list(found)})"
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise _index_error(path, error, timeout) from None
        return f"damaged ({error})"
    except sqlite3.DatabaseError as error:
        return f"damaged ({error})"
    return None


def _index_error(path: Path, error: sqlite3.OperationalError, timeout: float) -> StoreError:
    text = str(error)
    if "locked" in text or "busy" in text:
        return StoreError(f"{path}: locked by another process for {timeout:g} s; wait for it to finish (or stop it) and run the command again")
    if "readonly" in text or "read-only" in text or getattr(error, "sqlite_errorcode", None) == errno.EROFS:
        return StoreError(f"{path}: is read-only; give --out a folder you can write to")
    return StoreError(f"{path}: cannot use the index ({text}); delete it, and assay rebuilds it from the run folders")


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)
