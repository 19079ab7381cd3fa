"""Views: named, deterministic transformations of a split.

A view name is ``family[:kind][@severity]``: ``clean``, ``corrupt:gaussian_noise@3``,
``ood:noise``, ``adv:pgd@0.1``. The prediction cache keys on the name, so a
new family slots in by adding a transform here; checks only ask for names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SpecError
from .task import Split

_VIEW = re.compile(r"^(?P<family>[a-z]+)(?::(?P<kind>[a-z0-9_]+))?(?:@(?P<severity>[0-9.]+))?$")


@dataclass(frozen=True)
class ViewName:
    family: str
    kind: str | None = None
    severity: float | None = None

    @classmethod
    def parse(cls, name: str) -> ViewName:
        m = _VIEW.match(name)
        if not m:
            raise SpecError(f"view '{name}': cannot parse; write family[:kind][@severity], e.g. corrupt:gaussian_noise@3")
        sev = m["severity"]
        return cls(m["family"], m["kind"], None if sev is None else float(sev))

    def filename(self) -> str:
        """A file-system safe form of the name."""
        out = self.family + (f"-{self.kind}" if self.kind else "") + (f"-{self.severity:g}" if self.severity is not None else "")
        return out


VIEW_FAMILIES = ("clean",)


def apply_view(split: Split, name: str, *, seed: int = 0) -> Split:
    """The split seen through view ``name``; the same seed gives the same data."""
    view = ViewName.parse(name)
    if view.family == "clean":
        return split
    raise SpecError(f"view '{name}': unknown family '{view.family}'; available: {', '.join(VIEW_FAMILIES)}")
