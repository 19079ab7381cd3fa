"""Evaluation overhead on the digits demo: the whole check stage vs the bare forward passes it needs.

    python benchmarks/overhead.py [--device cpu]

Runs examples/digits.toml into a temporary folder, runs its evaluation stage
once more exactly as the study does (fresh prediction cache, warm process),
then, on the same candidates, times the forward passes that stage cannot
avoid, written as a plain loop: every (candidate, split, view) pass the cache
made, plus the timed calls the efficiency check makes. Prints evaluate / bare.
Target: <= 1.5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from assay.models.inputs import as_input

ROOT = Path(__file__).resolve().parents[1]


def bare_forward_seconds(candidates, task, keys, efficiency, device) -> float:
    """The forward passes of the evaluation stage as a plain loop: each recorded
    (candidate, split, view) once (views materialised beforehand), plus the
    efficiency check's timed calls."""
    from assay.data.views import apply_view

    inputs = {(split, view): as_input(apply_view(task, split, view).x) for _, split, view, _ in keys}
    x = as_input(task.test.x)
    reps = -(-efficiency.batch_size // len(x))
    big = x.repeat(reps, *([1] * (x.ndim - 1)))[: efficiency.batch_size]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    started = time.perf_counter()
    with torch.inference_mode():
        for c in candidates:
            model = c.model.to(device if not c.provenance.transforms else "cpu")
            dev = next(model.parameters(), torch.empty(0)).device
            for name, split, view, embeddings in keys:
                if name != c.name:
                    continue
                data = inputs[(split, view)]
                for i in range(0, len(data), 512):
                    batch = data[i : i + 512].to(dev)
                    model.head(model.features(batch)) if embeddings else model(batch)
            one, batch = x[:1].to(dev), big.to(dev)
            for _ in range(efficiency.warmup + efficiency.repeats):
                model(one)
                sync()
            for _ in range(1 + efficiency.batch_repeats):  # the small models here never hit the time budget
                model(batch)
                sync()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    from assay.checks.efficiency import Efficiency
    from assay.checks.predictions import PredictionCache
    from assay.study import Study

    with tempfile.TemporaryDirectory() as out, threadpool_limits(1):
        study = Study.from_file(ROOT / "examples" / "digits.toml", out=out, device=args.device, progress=False)
        result = study.run()  # trains and writes everything; its timings include a cold evaluation
        task = _task(study)
        candidates = [study.store.load_candidate(result.run_id, c["name"]) for c in result.candidates]
        # The evaluation stage again, exactly as the study runs it, on a fresh cache (warm process).
        cache = PredictionCache(Path(out) / "bench-predictions", device=study.device, seed=study.seed)
        started = time.perf_counter()
        study.evaluate(task, candidates, cache)
        evaluate_s = time.perf_counter() - started
        names = {c.id: c.name for c in candidates}
        keys = [(names[cid], split, view, p.embeddings is not None) for (cid, _, split, view), p in cache._memory.items()]
        efficiency = Efficiency(**study.spec.checks.get("efficiency", {}))
        bare = min(bare_forward_seconds(candidates, task, keys, efficiency, study.device) for _ in range(3))
    t = result.timings
    print(f"device:                {study.device}")
    print(f"candidates:            {', '.join(c['name'] for c in result.candidates)}")
    print(f"checks:                {', '.join(study.spec.checks)}")
    print(f"make (train+compress): {t['make_s']:.2f} s")
    print(f"evaluate stage:        {evaluate_s:.3f} s  (first, cold run inside the study: {t['evaluate_s']:.3f} s)")
    print(f"bare forward passes:   {bare:.3f} s  ({len(keys)} cached passes + the efficiency check's timed calls; best of 3)")
    ratio = evaluate_s / bare
    print(f"overhead ratio:        {ratio:.2f}  (evaluate / bare forward; target <= 1.5)")
    return 0 if ratio <= 1.5 else 1


def _task(study):
    from assay.study import load_task

    return load_task(study.spec.task, base_dir=study.spec.base_dir, seed=study.seed)


if __name__ == "__main__":
    sys.exit(main())
