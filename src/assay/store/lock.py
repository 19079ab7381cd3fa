"""One process per run: the lock files and ``RunHandle``.

``runs/<id>/.lock`` is held (``flock``, exclusive) by the process running the
run for the run's whole life, and ``runs/.lock`` while a run is picked or
created, so a second identical command is refused in one line instead of
training into the same folder. The kernel drops a killed process's lock, so a
run marked ``running`` whose lock nobody holds was killed. The holder writes
its pid into the file, for the message that refuses the second process.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .clock import now

if TYPE_CHECKING:
    from .store import Store

LOCK = ".lock"


def open_lock(path: Path) -> int:
    """A descriptor on the lock file ``path``, created when missing (with the user's umask)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise StoreError(f"{path}: cannot open the lock file ({error.strerror or error}); give --out a folder you can write to") from None


def holder(path: Path) -> str:
    """Who holds the lock file ``path``, as its holder wrote it (``pid 1234``)."""
    try:
        return path.read_text().strip() or "unknown pid"
    except OSError:
        return "unknown pid"


@contextmanager
def waiting_for(path: Path) -> Iterator[None]:
    """Hold the lock file ``path`` for the block, waiting while another process holds it."""
    fd = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """Whether a process (this one included) holds the lock file ``path`` now; a missing file is not held."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:  # a shared lock is refused only while someone holds the exclusive one
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


class RunHandle:
    """A run this process holds the lock of (what ``Store.open_run`` returns).

    Leaving its ``with`` block normally marks the run finished when it recorded
    a decision; leaving it by an exception marks it interrupted. Either way the
    lock is released.

    Attributes:
        id: the run id; resumed: whether an unfinished run was continued.
    """

    def __init__(self, store: Store, run_id: str, *, resumed: bool) -> None:
        self.store, self.id, self.resumed = store, run_id, resumed
        self.decided: dict[str, Any] | None = None  # run.json's decision fields, written as finished on a clean exit
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r}, resumed={self.resumed})"

    @property
    def folder(self) -> Path:
        """The run's folder, ``runs/<id>/``."""
        return self.store.run_dir(self.id)

    def _acquire(self) -> None:
        """Take the run's lock without waiting: a run someone else holds is refused with the fix."""
        path = self.folder / LOCK
        fd = open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(f"{self.folder}: another assay process ({holder(path)}) is running this run now; "
                             "wait for it to finish, or pass --new to start a separate run") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd
        self.store._open[self.id] = self

    def release(self) -> None:
        """Let go of the run's lock (again is harmless)."""
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
