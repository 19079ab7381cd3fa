"""The index ``runs/index.db`` (SQLite): runs, candidates and evidence, for listing and querying.

The index holds nothing the run folders do not, so a missing or damaged one is
rebuilt from them (with a warning), and a read-only runs folder is indexed in
memory without writing anything. Writes happen in transactions, and a rebuild
is written beside the old file and renamed over it, so an interrupted process
leaves the old index or the new one. A locked, read-only or otherwise unusable
index is a one-line StoreError with the fix.
"""

from __future__ import annotations

import errno
import math
import os
import sqlite3
import warnings
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from .._io import atomic_path
from ..errors import AssayError, StoreError
from ..evidence import Evidence
from .folders import ensure_root, readable, run_folders
from .reads import load_evidence, read_description, read_meta

INDEX = "index.db"

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
_COLUMNS = {  # what an index must hold to be used as it is; anything else is rebuilt
    "runs": ("id", "name", "study_path", "config_hash", "data_hash", "status", "created", "finished", "chosen", "exit_code"),
    "candidates": ("run_id", "name", "id", "recipe", "parent", "parameters"),
    "evidence": ("run_id", "candidate", "check_name", "metric", "split", "view", "value", "low", "high"),
}


class Index:
    """The index of the runs folder ``root`` (``root/index.db``).

    Args:
        root: the runs folder.
        timeout: seconds to wait for an index another process is writing.
    """

    def __init__(self, root: Path, *, timeout: float) -> None:
        self.root = root
        self.path = root / INDEX
        self.timeout = timeout
        self.checked = False  # the index was found sound (or rebuilt) through this object

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r}, timeout={self.timeout:g})"

    @contextmanager
    def connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection to the index (a transaction when writing), rebuilt first when missing or damaged.

        Raises:
            StoreError: the index is locked, read-only or unwritable (one line, with the fix).
        """
        path = self.path
        if write:
            ensure_root(self.root)
        elif not readable(self.root):  # no runs folder yet: an empty index, nothing created
            with closing(sqlite3.connect(":memory:")) as con:
                con.executescript(_SCHEMA)
                yield con
            return
        writable = os.access(self.root, os.W_OK)
        try:
            if not self.checked or not path.exists():  # deleted under a running study: rebuilt too
                problem = _index_problem(path, self.timeout)
                if problem is not None:
                    if not writable:  # read what the folders hold without writing anything
                        if write:
                            raise StoreError(f"{path}: {problem} and the folder is read-only; give --out a folder you can write to")
                        with closing(sqlite3.connect(":memory:")) as con:
                            con.executescript(_SCHEMA)
                            self.fill(con)
                            yield con
                        return
                    self.rebuild(problem)
                self.checked = True
            con = sqlite3.connect(path if writable else f"file:{path}?mode=ro", timeout=self.timeout, uri=not writable)
            with closing(con):
                if write:
                    with con:
                        yield con
                else:
                    yield con
        except sqlite3.OperationalError as error:
            raise _index_error(path, error, self.timeout) from None

    def rebuild(self, problem: str) -> None:
        """Write a new index from the run folders, over a missing or damaged one; ``problem`` says why."""
        if self.path.exists():
            # stacklevel 4 names the Store method whose ``with`` found the problem
            warnings.warn(f"{self.path}: {problem}; rebuilding it from the run folders", UserWarning, stacklevel=4)
        with atomic_path(self.path) as tmp:
            with closing(sqlite3.connect(tmp)) as con, con:
                con.executescript(_SCHEMA)
                self.fill(con)

    def fill(self, con: sqlite3.Connection) -> None:
        """Index every run folder under the root."""
        for run_id in sorted(run_folders(self.root)):
            self.index_run(con, run_id)

    def index_run(self, con: sqlite3.Connection, run_id: str) -> None:
        """(Re)index one run folder; what cannot be read is left out, with a warning."""
        folder = self.root / run_id
        for table in _COLUMNS:
            con.execute(f"DELETE FROM {table} WHERE {'id' if table == 'runs' else 'run_id'} = ?", (run_id,))
        if not folder.is_dir():  # removed by hand: forgotten
            return
        try:
            meta = read_meta(folder, run_id)
        except AssayError as error:
            warnings.warn(f"{error} (run left out of the index)", UserWarning, stacklevel=3)
            return
        insert_run(con, meta)
        for path in sorted((folder / "candidates").glob("*.json")):
            try:
                d = read_description(path)
            except AssayError as error:
                warnings.warn(f"{error} (candidate left out of the index)", UserWarning, stacklevel=3)
                continue
            insert_candidate(con, run_id, d["name"], d["id"], d.get("recipe"), d.get("parent"), d.get("parameters"))
        try:
            insert_evidence(con, run_id, load_evidence(folder, run_id))
        except AssayError as error:
            warnings.warn(f"{error} (evidence left out of the index)", UserWarning, stacklevel=3)


# --- rows: what the Store writes and reads, in the index's columns ---------------------------

def insert_run(con: sqlite3.Connection, meta: dict[str, Any]) -> None:
    """Index (or re-index) a run from its ``run.json``."""
    con.execute(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * 10)})", tuple(meta.get(c) for c in _COLUMNS["runs"]))


def update_status(con: sqlite3.Connection, run_id: str, meta: dict[str, Any]) -> None:
    """Copy a run's status and decision fields from its new ``run.json``."""
    con.execute("UPDATE runs SET status = ?, finished = ?, chosen = ?, exit_code = ? WHERE id = ?",
                (meta["status"], meta.get("finished"), meta.get("chosen"), meta.get("exit_code"), run_id))


def insert_candidate(con: sqlite3.Connection, run_id: str, name: str, candidate_id: str, recipe: str | None, parent: str | None,
                     parameters: int | None) -> None:
    """Index (or re-index) one candidate of a run."""
    con.execute("INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?)", (run_id, name, candidate_id, recipe, parent, parameters))


def replace_evidence(con: sqlite3.Connection, run_id: str, evidence: Iterable[Evidence]) -> None:
    """Make ``evidence`` the run's indexed evidence, dropping what was indexed before."""
    con.execute("DELETE FROM evidence WHERE run_id = ?", (run_id,))
    insert_evidence(con, run_id, evidence)


def insert_evidence(con: sqlite3.Connection, run_id: str, evidence: Iterable[Evidence]) -> None:
    """Index a run's evidence records."""
    con.executemany(
        "INSERT OR REPLACE INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(run_id, e.candidate, e.check, e.metric, e.split, e.view, _real(e.value), _real(e.low), _real(e.high)) for e in evidence],
    )


def newest_unfinished(con: sqlite3.Connection, config_hash: str) -> str | None:
    """The id of the newest indexed run of this study hash that did not finish, if any."""
    row = con.execute(
        "SELECT id FROM runs WHERE config_hash = ? AND status != 'finished' ORDER BY created DESC, id DESC LIMIT 1", (config_hash,)
    ).fetchone()
    return row[0] if row else None


def indexed_ids(con: sqlite3.Connection) -> set[str]:
    """The ids of every indexed run."""
    return {r[0] for r in con.execute("SELECT id FROM runs")}


def indexed_runs(con: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every indexed run's row, newest first."""
    con.row_factory = sqlite3.Row
    return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY created DESC, id DESC")]


def _real(v: Any) -> float | None:
    # a NaN metric (undefined on this slice) is indexed as NULL, SQL's "no value"
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
    """The one-line StoreError for an index SQLite refused: locked, read-only, or otherwise unusable."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return StoreError(f"{path}: locked by another process for {timeout:g} s; wait for it to finish (or stop it) and run the command again")
    if "readonly" in text or "read-only" in text or getattr(error, "sqlite_errorcode", None) == errno.EROFS:
        return StoreError(f"{path}: is read-only; give --out a folder you can write to")
    return StoreError(f"{path}: cannot use the index ({text}); delete it, and assay rebuilds it from the run folders")
