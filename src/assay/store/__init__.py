"""Run folders and the index database: the store as a package (see ``store.py``)."""

from .store import INDEX, LOCK, STATUSES, RunHandle, Store, datetime, now  # noqa: F401  (datetime: the clock tests freeze)

__all__ = ["INDEX", "LOCK", "STATUSES", "RunHandle", "Store", "now"]
