"""Evaluation overhead on the digits demo: the whole check stage vs the bare forward passes it needs.

    python benchmarks/overhead.py [--device cpu]

Runs examples/digits.toml into a temporary folder, then, in the same process
and on the same candidates, times the forward passes that evaluation cannot
avoid, written as a plain loop: one batched pass over the test split per
candidate, plus the timed calls the efficiency check makes (warm-up and
repeats at batch 1 and at its large batch). Prints evaluate / bare.
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

ROOT = Path(__file__).resolve().parents[1]


def bare_forward_seconds(candidates, task, device, efficiency) -> float:
    """The same forward passes as the evaluation stage, with nothing around them."""
    x = torch.as_tensor(task.test.x, dtype=torch.float32)
    reps = -(-efficiency.batch_size // len(x))
    big = x.repeat(reps, *([1] * (x.ndim - 1)))[: efficiency.batch_size]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    started = time.perf_counter()
    with torch.inference_mode():
        for c in candidates:
            model = c.model.to(device if not c.provenance.transforms else "cpu")
            dev = next(model.parameters(), torch.empty(0)).device
            for i in range(0, len(x), 512):
                model(x[i : i + 512].to(dev))
            one, batch = x[:1].to(dev), big.to(dev)
            for _ in range(efficiency.warmup + efficiency.repeats):
                model(one)
                sync()
            for _ in range(max(1, efficiency.warmup // 5) + efficiency.batch_repeats):
                model(batch)
                sync()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    from assay.checks.efficiency import Efficiency
    from assay.study import Study

    with tempfile.TemporaryDirectory() as out, threadpool_limits(1):
        study = Study.from_file(ROOT / "examples" / "digits.toml", out=out, device=args.device, progress=False)
        result = study.run()
        candidates = [study.store.load_candidate(result.run_id, c["name"]) for c in result.candidates]
        options = study.spec.checks.get("efficiency", {})
        task = _task(study)
        bare = min(bare_forward_seconds(candidates, task, study.device, Efficiency(**options)) for _ in range(3))
    t = result.timings
    print(f"device:               {study.device}")
    print(f"candidates:           {', '.join(c['name'] for c in result.candidates)}")
    print(f"make (train+compress): {t['make_s']:.2f} s")
    print(f"evaluate stage:       {t['evaluate_s']:.3f} s  (of which forward passes in the cache: {t['forward_s']:.3f} s)")
    print(f"bare forward passes:  {bare:.3f} s  (best of 3, same candidates, same machine)")
    print(f"report:               {t['report_s']:.2f} s")
    ratio = t["evaluate_s"] / bare
    print(f"overhead ratio:       {ratio:.2f}  (evaluate / bare forward; target <= 1.5)")
    return 0 if ratio <= 1.5 else 1


def _task(study):
    from assay.study import load_task

    return load_task(study.spec.task, base_dir=study.spec.base_dir, seed=study.seed)


if __name__ == "__main__":
    sys.exit(main())
