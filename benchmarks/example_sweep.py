"""Every bundled example, run and swept: is every figure finite, inside its interval and drawn?

    python benchmarks/example_sweep.py [--runs DIR] [EXAMPLE ...]

Runs each ``examples/*.toml`` (or only those named) into ``--runs`` (default
a temporary folder; a finished run found in ``DIR/EXAMPLE/`` is read back,
not run again) and checks every evidence record with ``assay.evidence.problems``, plus
the report for "Could not draw". The test suite sweeps the two fast examples
(``tests/test_example_sweep.py``); this covers all of them, which takes about
half an hour on two cores. Prints one line per example and exits 1 on any
problem.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def sweep(run: Path) -> list[str]:
    from assay.evidence import problems
    from assay.store import Store

    records = Store(run.parent).load_evidence(run.name)  # the store's checked read: a damaged or changed file is an error
    found = [p for e in records for p in problems(e)] or ([] if records else ["no evidence"])
    html = (run / "report.html").read_text()
    if "Could not draw" in html:
        found.append(html[html.index("Could not draw"):][:200])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="*", help="example names (default: every examples/*.toml)")
    parser.add_argument("--runs", type=Path, default=None, help="runs folder to write into or read back")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from assay.spec import load_study
    from assay.store import Store
    from assay.study import Study

    names = args.examples or sorted(p.stem for p in EXAMPLES.glob("*.toml"))
    out = args.runs or Path(tempfile.mkdtemp(prefix="assay-sweep-"))
    failed = 0
    for name in names:
        started = time.perf_counter()
        folder = out / name
        if not any((p / "report.html").is_file() for p in folder.glob("*/")):
            Study(load_study(EXAMPLES / f"{name}.toml"), out=folder, progress=False).run()
        run = max((p for p in folder.iterdir() if (p / "evidence.jsonl").is_file()), key=lambda p: p.stat().st_mtime)
        found = sweep(run)
        records = len(Store(run.parent).load_evidence(run.name))
        print(f"{name:18s} {records:5d} records  {len(found):3d} problems  {time.perf_counter() - started:7.1f} s", flush=True)
        for problem in found:
            print(f"    {problem}")
        failed += bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
