"""The store's clock: run timestamps and the date-time in a new run's id."""

from __future__ import annotations

import sys
from datetime import datetime, timezone


def _datetime() -> type[datetime]:
    # Looked up on the package at call time, not bound at import: ``assay.store.datetime``
    # stays the one name a caller (tests/test_store.py) replaces to freeze the clock, as it
    # was when the store was a single module.
    return getattr(sys.modules.get(__package__ or ""), "datetime", datetime)


def now() -> str:
    """The local time, to the second, with its UTC offset (``created``, ``finished`` in ``run.json``)."""
    return _datetime().now(timezone.utc).astimezone().isoformat(timespec="seconds")


def id_stamp() -> str:
    """The local date and time as a new run's id holds it: ``YYYYmmdd-HHMMSS``."""
    return f"{_datetime().now():%Y%m%d-%H%M%S}"
