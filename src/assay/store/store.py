"""``Store``: a study's runs, opened under their lock, written and read back.

The Store is the one interface the study and the CLI use; it keeps the run
folders and the index in step. Its pieces live beside it: the index
(``index.py``), the locks (``lock.py``), the checked reads (``reads.py``) and
the runs folder's checks (``folders.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._io import remove_stale_tmp, sha256_file, write_json, write_text
from ..errors import StoreError, did_you_mean
from ..evidence import Evidence
from ..models.candidate import Candidate
from ..select import Decision
from .clock import id_stamp, now
from .folders import ensure_root, readable, run_folders, where
from .index import Index, indexed_ids, indexed_runs, insert_candidate, insert_run, newest_unfinished, replace_evidence, update_status
from .lock import LOCK, RunHandle, holder, is_held, waiting_for
from .reads import load_decision, load_evidence, read_description, read_evidence, read_meta, read_study, reason


class Store:
    """Run folders under ``root`` and the SQLite index ``root/index.db``.

    Args:
        root: the runs folder (``--out``).
        timeout: seconds to wait for an index another process is writing.
    """

    def __init__(self, root: Path | str = "runs", *, timeout: float = 30.0) -> None:
        self.root = Path(root)
        self.timeout = timeout
        self._index = Index(self.root, timeout=timeout)
        self._open: dict[str, RunHandle] = {}  # runs this Store holds the lock of
        self._loaded: dict[tuple[str, str], Candidate] = {}  # candidates has_candidate loaded, kept for load_candidate

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def run_dir(self, run_id: str) -> Path:
        """The folder of run ``run_id``, ``root/<id>/`` (it may not exist)."""
        return self.root / run_id

    def rebuild_index(self) -> int:
        """Rebuild ``index.db`` from the run folders; return how many runs it indexes."""
        ensure_root(self.root)
        self._index.rebuild("rebuilt on request")
        self._index.checked = True
        return len(self.list_runs())

    # --- one process per run -----------------------------------------------
    @contextmanager
    def _root_lock(self) -> Iterator[None]:
        """Held while a run is picked or created, so two processes never pick the same new id or run."""
        ensure_root(self.root)
        with waiting_for(self.root / LOCK):
            yield

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
        base = f"{name}-{id_stamp()}-{config_hash[:4]}"
        for n in range(1, 10_000):
            run_id = base if n == 1 else f"{base}-{n}"
            try:
                self.run_dir(run_id).mkdir()
                return run_id
            except FileExistsError:
                continue
        raise StoreError(f"{where(self.root)}: 10,000 runs named {base}; clean up the runs folder")

    def is_running(self, run_id: str) -> bool:
        """Whether a process (this one included) holds the run's lock now."""
        return is_held(self.run_dir(run_id) / LOCK)

    def _status(self, run_id: str, recorded: str | None) -> str | None:
        # a run recorded as running whose lock nobody holds was killed
        return "interrupted" if recorded == "running" and not self.is_running(run_id) else recorded

    # --- writing -----------------------------------------------------------
    def create_run(self, run_id: str, meta: dict[str, Any], study_text: str) -> Path:
        """Make the folder ``run_id`` (it must not exist), write ``study.toml`` and ``run.json``, and index it.

        Prefer ``open_run``, which also picks a unique id and holds the run's lock.
        """
        ensure_root(self.root)
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
        with self._index.connect(write=True) as con:
            insert_run(con, meta)
        return folder

    def find_resumable(self, config_hash: str) -> str | None:
        """The newest unfinished run of the same study, if any.

        Raises:
            StoreError: another process is running it now.
        """
        with self._index.connect() as con:
            found = newest_unfinished(con, config_hash)
        if found is None or not self.run_dir(found).is_dir():
            return None
        if self.is_running(found):
            raise StoreError(f"{self.run_dir(found)}: another assay process ({holder(self.run_dir(found) / LOCK)}) is running this study now; "
                             "wait for it to finish, or pass --new to start a separate run")
        return found

    def _set_status(self, run_id: str, status: str, **fields: Any) -> None:
        meta = {**self._read_meta(run_id), "status": status, **fields}
        write_json(self.run_dir(run_id) / "run.json", meta)
        with self._index.connect(write=True) as con:
            update_status(con, run_id, meta)

    def save_candidate(self, run_id: str, candidate: Candidate) -> None:
        """Write ``candidate`` (weights and description) into the run's ``candidates/`` and index it."""
        candidate.save(self.run_dir(run_id) / "candidates")
        p = candidate.provenance
        with self._index.connect(write=True) as con:
            insert_candidate(con, run_id, candidate.name, candidate.id, p.recipe, p.parent, candidate.parameter_count())

    def has_candidate(self, run_id: str, name: str) -> bool:
        """Whether a sound saved candidate ``name`` is in the run (a damaged one warns and counts as absent, so it is made again)."""
        folder = self.run_dir(run_id) / "candidates"
        if not ((folder / f"{name}.json").is_file() and (folder / f"{name}.safetensors").is_file()):
            return False
        try:
            self._loaded[(run_id, name)] = Candidate.load(folder, name)
        except Exception as error:  # damaged or tampered: never trusted, always safe to make again
            warnings.warn(f"{folder / name}: cannot load the saved candidate ({reason(error)}); making it again", UserWarning, stacklevel=2)
            return False
        return True

    def load_candidate(self, run_id: str, name: str) -> Candidate:
        """The saved candidate ``name`` of the run (the one ``has_candidate`` just loaded, when it did)."""
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
        with self._index.connect(write=True) as con:
            replace_evidence(con, run_id, evidence)
        ids = {p.stem: read_description(p)["id"] for p in sorted((folder / "candidates").glob("*.json"))}
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
            return read_evidence(self.run_dir(run_id), run_id)
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
        if not readable(self.root):
            return []
        with self._index.connect() as con:
            indexed = indexed_ids(con)
        folders = run_folders(self.root)
        if indexed != folders and os.access(self.root, os.W_OK):  # folders removed or added by hand
            with self._index.connect(write=True) as con:
                for run_id in indexed ^ folders:
                    self._index.index_run(con, run_id)
        with self._index.connect() as con:
            rows = [r for r in indexed_runs(con) if r["id"] in folders]
        for row in rows:
            row["status"] = self._status(row["id"], row["status"])
        return rows

    def run_meta(self, run_id: str) -> dict[str, Any]:
        """``run.json``, checked; ``status`` reads ``interrupted`` for a run no process holds."""
        meta = self._read_meta(run_id)
        return {**meta, "status": self._status(run_id, meta["status"])}

    def _read_meta(self, run_id: str) -> dict[str, Any]:
        return read_meta(self.run_dir(run_id), run_id)

    def study_text(self, run_id: str) -> str:
        """The study file the run was made from, as copied into its folder."""
        return read_study(self.run_dir(run_id))

    def candidate_descriptions(self, run_id: str, order: Iterable[str]) -> list[dict[str, Any]]:
        """The checked descriptions of the run's saved candidates, in ``order`` (names not saved are skipped)."""
        folder = self.run_dir(run_id) / "candidates"
        return [read_description(folder / f"{name}.json") for name in order if (folder / f"{name}.json").is_file()]

    def load_evidence(self, run_id: str) -> list[Evidence]:
        """The run's evidence, checked against the checksum its checks recorded.

        Raises:
            StoreError: the file is damaged, changed, or not this run's.
        """
        return load_evidence(self.run_dir(run_id), run_id)

    def load_decision(self, run_id: str) -> Decision | None:
        """The run's decision, checked against the checksum recorded with it; ``None`` before one is made.

        Raises:
            StoreError: the file is damaged, changed, or names candidates the run does not have.
        """
        return load_decision(self.run_dir(run_id), run_id)


def _plain(value: Any) -> Any:
    # evidence details may hold numpy values: written as lists/numbers, anything else as its text
    return value.tolist() if hasattr(value, "tolist") else str(value)

