"""How much memory a job may take, so a too-large one is refused from an estimate instead of being killed."""

from __future__ import annotations

import os

# A job estimated above this share of the memory available now is refused:
# the rest is for the interpreter, libraries and copies the estimate leaves out.
SHARE = 0.5


def available_bytes() -> int:
    """Memory available to this process now (Linux ``MemAvailable``; otherwise physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def budget_bytes() -> int:
    """The most an estimated job may take."""
    return int(available_bytes() * SHARE)


def size_text(n: float) -> str:
    """Bytes as ``1.2 GB``."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
