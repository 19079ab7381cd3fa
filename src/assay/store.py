"""Run folders and the index database.

Each run is a folder ``runs/<id>/`` holding everything needed to rebuild its
report: the resolved study file, ``run.json``, candidates (safetensors + JSON),
predictions, ``evidence.jsonl``, ``decision.json``, the report and the model
card. ``runs/index.db`` (SQLite) indexes runs, candidates and evidence for
listing and querying. Files are written atomically; the index is written in
transactions, so an interrupted run leaves either the old or the new state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._io import write_json, write_text
from .checks.base import Evidence
from .errors import StoreError, did_you_mean
from .models.candidate import Candidate
from .select import Decision

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


def now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class Store:
    """Run folders under ``root`` and the SQLite index ``root/index.db``."""

    def __init__(self, root: Path | str = "runs") -> None:
        self.root = Path(root)

    def _db(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.root / "index.db", timeout=30)
        con.executescript(_SCHEMA)
        return con

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    # --- writing -----------------------------------------------------------
    def create_run(self, run_id: str, meta: dict[str, Any], study_text: str) -> Path:
        """Make the folder, write ``study.toml`` and ``run.json``, and index it."""
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=False)
        write_text(folder / "study.toml", study_text)
        meta = {**meta, "id": run_id, "status": "running", "created": now()}
        write_json(folder / "run.json", meta)
        with closing(self._db()) as con, con:
            con.execute(
                "INSERT INTO runs (id, name, study_path, config_hash, data_hash, status, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, meta.get("name"), meta.get("study_path"), meta.get("config_hash"), meta.get("data_hash"), "running", meta["created"]),
            )
        return folder

    def find_resumable(self, config_hash: str) -> str | None:
        """The newest unfinished run of the same study, if any."""
        with closing(self._db()) as con:
            row = con.execute(
                "SELECT id FROM runs WHERE config_hash = ? AND status != 'finished' ORDER BY created DESC LIMIT 1", (config_hash,)
            ).fetchone()
        return row[0] if row and self.run_dir(row[0]).is_dir() else None

    def save_candidate(self, run_id: str, candidate: Candidate) -> None:
        candidate.save(self.run_dir(run_id) / "candidates")
        p = candidate.provenance
        with closing(self._db()) as con, con:
            con.execute(
                "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, candidate.name, candidate.id, p.recipe, p.parent, candidate.parameter_count()),
            )

    def has_candidate(self, run_id: str, name: str) -> bool:
        folder = self.run_dir(run_id) / "candidates"
        return (folder / f"{name}.json").is_file() and (folder / f"{name}.safetensors").is_file()

    def load_candidate(self, run_id: str, name: str) -> Candidate:
        return Candidate.load(self.run_dir(run_id) / "candidates", name)

    def save_evidence(self, run_id: str, evidence: Sequence[Evidence]) -> None:
        """Replace the run's evidence with ``evidence`` (file and index)."""
        lines = "".join(json.dumps(e.to_dict(), sort_keys=True, default=_plain) + "\n" for e in evidence)
        write_text(self.run_dir(run_id) / "evidence.jsonl", lines)
        with closing(self._db()) as con, con:
            con.execute("DELETE FROM evidence WHERE run_id = ?", (run_id,))
            con.executemany(
                "INSERT OR REPLACE INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, e.candidate, e.check, e.metric, e.split, e.view, e.value, e.low, e.high) for e in evidence],
            )

    def finish_run(self, run_id: str, decision: Decision, exit_code: int) -> None:
        folder = self.run_dir(run_id)
        write_json(folder / "decision.json", decision.to_dict())
        meta = self.run_meta(run_id)
        meta.update(status="finished", finished=now(), chosen=decision.chosen, exit_code=exit_code)
        write_json(folder / "run.json", meta)
        with closing(self._db()) as con, con:
            con.execute(
                "UPDATE runs SET status = 'finished', finished = ?, chosen = ?, exit_code = ? WHERE id = ?",
                (meta["finished"], decision.chosen, exit_code, run_id),
            )

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
        """Every indexed run, newest first."""
        if not (self.root / "index.db").is_file():
            return []
        with closing(self._db()) as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY created DESC, id DESC")]

    def run_meta(self, run_id: str) -> dict[str, Any]:
        return json.loads((self.run_dir(run_id) / "run.json").read_text())

    def study_text(self, run_id: str) -> str:
        return (self.run_dir(run_id) / "study.toml").read_text()

    def candidate_descriptions(self, run_id: str, order: Iterable[str]) -> list[dict[str, Any]]:
        folder = self.run_dir(run_id) / "candidates"
        return [json.loads((folder / f"{name}.json").read_text()) for name in order if (folder / f"{name}.json").is_file()]

    def load_evidence(self, run_id: str) -> list[Evidence]:
        path = self.run_dir(run_id) / "evidence.jsonl"
        if not path.is_file():
            return []
        return [Evidence.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]

    def load_decision(self, run_id: str) -> Decision | None:
        path = self.run_dir(run_id) / "decision.json"
        return Decision.from_dict(json.loads(path.read_text())) if path.is_file() else None


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)
