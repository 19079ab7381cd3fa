"""Peak memory of the whole battery as the MNIST-1D test split grows.

    python benchmarks/battery_memory.py            # 1k and 20k test samples
    python benchmarks/battery_memory.py --sizes 1000 5000 20000

Each size runs in a fresh process: generate MNIST-1D with 5x as many samples
(the generator keeps 20% for test), train a small 1-D CNN for 2 epochs, then
run every check except efficiency through the shared cache (memory only).
Prints the process's peak resident memory before and after the battery, so
the battery's own growth is visible. Bounded means: far from linear in the
number of (view x sample) predictions it reads.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(size: int) -> dict:
    import tempfile
    from pathlib import Path

    from threadpoolctl import threadpool_limits

    from assay.checks import load_all
    from assay.checks.base import CheckContext, make_check
    from assay.checks.predictions import PredictionCache
    from assay.recipes import RecipeContext, make_recipe
    from assay.study import load_task

    with threadpool_limits(1), tempfile.TemporaryDirectory() as work:
        task = load_task({"builtin": "mnist1d", "num_samples": size * 5, "holdout_classes": ["8", "9"]}, base_dir=Path("."), seed=0)
        ctx = RecipeContext(task=task, work_dir=Path(work), progress=False)
        model = make_recipe("train", {"arch": "cnn", "epochs": 2, "arch_options": {"channels": [32, 64]}}, "cnn").make("cnn", ctx)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        checks = [make_check(name, {}) for name in load_all() if name != "efficiency"]
        cache = PredictionCache(None)
        started = time.perf_counter()
        cache.prefetch([model], task, set().union(*(c.requests(task) for c in checks)))
        context = CheckContext(task=task, predictions=cache, candidates={"cnn": model})
        for check in checks:
            check.run(model, context)
        seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"test_samples": len(task.test), "peak_before_mb": round(before), "peak_after_mb": round(after), "battery_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    print(f"{'test samples':>12}  {'peak before':>11}  {'peak after':>10}  {'battery':>8}")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(size)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['test_samples']:>12,}  {r['peak_before_mb']:>8} MB  {r['peak_after_mb']:>7} MB  {r['battery_seconds']:>6} s")


if __name__ == "__main__":
    main()
