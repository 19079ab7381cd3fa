"""Do two runs of a study give the same decision and the same evidence?

    python benchmarks/evidence_diff.py RUN_A RUN_B [--ignore FIELD ...]

Each argument is a run folder (holding ``evidence.jsonl``) or a runs folder
(its newest run is taken). Records are matched by (candidate, check, metric,
split, view) and their value, interval and details compared to a relative
1e-9. What measures time on this machine is left out: the efficiency check's
latency, throughput, memory and energy, the training energy, and any detail
named after seconds, milliseconds, watts or joules. Prints each difference and
exits 1 when there is one; a refactor that changes structure, not results,
prints "same". ``--ignore FIELD`` leaves out a record field or detail key
that one version adds (e.g. ``--ignore reference``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

TIMED = {"latency_p50_ms", "latency_p95_ms", "throughput_per_s", "peak_memory_mb", "energy_per_1k_j", "training_energy_kj", "training_co2e_g"}
TIMED_KEYS = ("seconds", "_ms", "ms_", "latency", "throughput", "energy", "co2e", "watts", "joules", "power", "calls_timed", "peak_memory")


def run_folder(path: Path) -> Path:
    if (path / "evidence.jsonl").is_file():
        return path
    runs = sorted((p for p in path.iterdir() if (p / "evidence.jsonl").is_file()), key=lambda p: p.stat().st_mtime)
    if not runs:
        sys.exit(f"{path}: no run folder with evidence.jsonl; give a run folder or a runs folder")
    return runs[-1]


def records(run: Path) -> dict[tuple, dict]:
    out = {}
    for line in (run / "evidence.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[(r["candidate"], r["check"], r["metric"], r["split"], r["view"])] = r
    return out


IGNORED: set[str] = set()


def timed(key: str) -> bool:
    return key in IGNORED or any(word in key.lower() for word in TIMED_KEYS)


def differences(a, b, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if timed(str(key)):
                continue
            if key not in a or key not in b:
                if a.get(key) is None and b.get(key) is None:
                    continue  # a field one version writes as null and the other leaves out
                out.append(f"{where}.{key}: only in {'first' if key in a else 'second'}")
            else:
                out += differences(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return []
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Compare the decision and evidence of two runs.")
    parser.add_argument("runs", nargs=2, type=Path, help="two run folders, or runs folders (the newest run of each)")
    parser.add_argument("--ignore", action="append", default=[], metavar="FIELD", help="a field or detail key to leave out")
    args = parser.parse_args(argv)
    IGNORED.update(args.ignore)
    first, second = (run_folder(p) for p in args.runs)
    a, b = records(first), records(second)
    out = [f"only in {first.name}: {k}" for k in sorted(set(a) - set(b), key=str)]
    out += [f"only in {second.name}: {k}" for k in sorted(set(b) - set(a), key=str)]
    for key in sorted(set(a) & set(b), key=str):
        if key[2] in TIMED or (key[2] == "skipped" and key[1] == "efficiency"):
            continue
        out += differences(a[key], b[key], "/".join(key))
    da, db = (json.loads((run / "decision.json").read_text()) for run in (first, second))
    if da.get("chosen") != db.get("chosen"):
        out.append(f"decision: {da.get('chosen')} vs {db.get('chosen')}")
    print(f"{first} vs {second}: {len(set(a) & set(b))} records compared")
    print("\n".join(out) if out else "same")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
