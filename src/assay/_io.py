"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The temporary file sits beside its target (``.<name>.<pid>-<random>.tmp``),
is created with the user's umask (``mkstemp`` would make it 0600, and the
rename would keep that: a report others cannot read), and is removed when the
write fails or is interrupted. A process killed outright (SIGKILL) cannot clean
up; ``remove_stale_tmp`` removes what it left, once the folder's lock is held.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it over ``path`` on success.

    The temporary file exists (empty) when the block starts, so its name is
    reserved; it is removed on any exception, KeyboardInterrupt included.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"
        try:  # 0o666 & ~umask, as open() would give the file itself
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def remove_stale_tmp(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Remove temporary files that writers no longer alive left under ``folder``; return them.

    A temporary file names its writer's process id; files of a live process
    (another run writing beside this one) are left alone.
    """
    removed = []
    found = Path(folder).rglob(f".*{TMP_SUFFIX}") if recursive else Path(folder).glob(f".*{TMP_SUFFIX}")
    for tmp in found:
        if tmp.is_file() and not _writer_alive(tmp.name):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _writer_alive(name: str) -> bool:
    match = re.search(r"\.(\d+)-[0-9a-f]+\.tmp$", name)
    if match is None:  # not ours, or an older assay's: nobody is writing it now
        return False
    pid = int(match[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, tuples and paths, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)
