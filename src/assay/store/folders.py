"""The runs folder (``--out``): whether it is there and writable, and the run folders it holds.

Each check ends in a one-line StoreError that names the folder and the fix, so
a wrong ``--out`` is reported before any work starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StoreError


def where(root: Path) -> str:
    """How messages name the runs folder."""
    return f"runs folder {root}"


def ensure_root(root: Path) -> None:
    """The runs folder exists and can be written, or a one-line StoreError says why.

    Raises:
        StoreError: ``root`` is a file, cannot be created, or is read-only.
    """
    if root.exists() and not root.is_dir():
        raise StoreError(f"{where(root)}: is a file, not a folder; give --out a folder (it is created when missing)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"{where(root)}: cannot create it ({error.strerror or error}); give --out a folder you can write to") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise StoreError(f"{where(root)}: is read-only; give --out a folder you can write to")


def readable(root: Path) -> bool:
    """Whether the runs folder exists; reading a missing one finds no runs rather than failing.

    Raises:
        StoreError: a file stands where the folder should be.
    """
    if root.exists() and not root.is_dir():
        raise StoreError(f"{where(root)}: is a file, not a folder; give --out the runs folder")
    return root.is_dir()


def run_folders(root: Path) -> set[str]:
    """The run folders under ``root``: those holding a run record or a study file."""
    return {p.name for p in root.iterdir() if p.is_dir() and ((p / "run.json").exists() or (p / "study.toml").exists())}
