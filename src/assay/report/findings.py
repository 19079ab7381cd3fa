"""The worst finding of each check, per candidate, in a few words.

The summary's second table: one cell per (candidate, check) naming where the
candidate is weakest (the class, corruption, OOD set, group or slice) rather
than an average that hides it. Each check writes its own cell
(``Check.worst_finding``); the columns follow the registry's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..checks import load_all
from ..evidence import Evidence


def worst_findings(evidence: Sequence[Evidence], names: Sequence[str]) -> dict[str, object]:
    """Columns (checks with a finding and a record) and one row of texts per candidate."""
    by: dict[tuple[str, str], dict[str, Evidence]] = {}
    for e in evidence:
        if e.split == "test":
            by.setdefault((e.candidate, e.check), {})[e.metric] = e
    finders = {name: cls for name, cls in load_all().items() if cls.worst_finding({}) is not None}
    checks = [c for c in finders if any((n, c) in by for n in names)]
    rows = [{"name": n, "cells": [finders[c].worst_finding(by.get((n, c), {})) or "–" for c in checks]} for n in names]
    return {"checks": checks, "rows": rows}
