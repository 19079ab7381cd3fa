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

The pieces, one job each:

* ``store.py``: ``Store``, the interface the study and the CLI use;
* ``index.py``: ``runs/index.db``, its schema, checks and rebuild;
* ``lock.py``: the lock files and ``RunHandle``;
* ``reads.py``: checked reads of a run folder's files;
* ``folders.py``: the runs folder itself; ``clock.py``: timestamps.
"""

from __future__ import annotations

# The store's clock: clock.py reads ``assay.store.datetime`` at call time, so replacing this
# one name freezes every timestamp and run id (as tests/test_store.py does).
from datetime import datetime  # noqa: F401

from .clock import now
from .index import INDEX
from .lock import LOCK, RunHandle
from .reads import STATUSES
from .store import Store

__all__ = ["INDEX", "LOCK", "STATUSES", "RunHandle", "Store", "now"]
