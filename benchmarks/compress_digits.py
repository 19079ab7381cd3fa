"""Pruning and distillation of the digits CNN, measured in one run.

    python benchmarks/compress_digits.py [--device cpu]

Trains the demo's CNN (channels 32, 64, 128), then:

* ``prune`` with ``method = "channels"``, 50% of every convolution's
  channels removed in 3 steps, fine-tuned after each: speed-up at batch 256
  (target >= 1.3x) and accuracy (target: within 1 point);
* ``distill`` into a CNN with <= 1/3 of the parameters: accuracy kept
  (target >= 97% of the teacher's).

Timings interleave the models over several rounds so drift on a shared
machine hits both alike.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from assay.checks.efficiency import time_calls
from assay.stats import mean_interval
from assay.models.inputs import as_input
from assay.recipes import RecipeContext, make_recipe
from assay.study import load_task


def accuracy(candidate, task) -> tuple[float, float, float]:
    correct = (candidate.predict(as_input(task.test.x)).argmax(1).cpu().numpy() == task.test.y).astype(float)
    return (float(correct.mean()), *mean_interval(correct, n_boot=1000, seed=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    device = torch.device(args.device)
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        task = load_task({"builtin": "digits"}, base_dir=Path("."), seed=0)
        made: dict = {}

        def make(name: str, kind: str, **options) -> None:
            ctx = RecipeContext(task=task, work_dir=Path(tmp) / name, device=device, candidates=made, progress=False)
            made[name] = make_recipe(kind, options, name).make(name, ctx).to(device)

        make("cnn", "train", arch="cnn", arch_options={"channels": [32, 64, 128]})
        make("pruned", "prune", parent="cnn", method="channels", sparsity=0.5, steps=3, epochs_per_step=8)
        make("student", "distill", parent="cnn", arch="cnn", arch_options={"channels": [16, 32, 48]}, temperature=4.0, alpha=0.9)

        x = as_input(task.test.x)
        batch = x.repeat(-(-256 // len(x)), 1, 1, 1)[:256].to(device)
        times: dict[str, list[float]] = {n: [] for n in made}
        for _ in range(args.rounds):
            for name, c in made.items():
                times[name] += time_calls(lambda c=c: c.predict(batch), warmup=3, repeats=20, device=device).tolist()
        acc = {n: accuracy(c, task) for n, c in made.items()}
        params = {n: c.parameter_count() for n, c in made.items()}

    p50 = {n: float(np.median(t)) for n, t in times.items()}
    print(f"task: digits, {len(task.test)} test images; batch 256 on {device}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds\n")
    print(f"{'model':10} {'architecture':22} {'params':>8} {'p50 b256 ms':>12} {'accuracy [95% CI]':>24}")
    for n, c in made.items():
        arch = f"cnn{tuple(c.provenance.arch.get('channels', ()))}"
        print(f"{n:10} {arch:22} {params[n]:>8,} {p50[n]:>12.2f} {acc[n][0]:>8.3f} [{acc[n][1]:.3f}, {acc[n][2]:.3f}]")
    speedup = p50["cnn"] / p50["pruned"]
    print(f"\nstructured pruning, 50% of channels: {speedup:.2f}x faster at batch 256 (target >= 1.3x); "
          f"accuracy {acc['pruned'][0] - acc['cnn'][0]:+.3f} (target: within 0.01)")
    kept = acc["student"][0] / acc["cnn"][0]
    print(f"distilled student: {params['student'] / params['cnn']:.2f} of the parameters (target <= 0.33); "
          f"keeps {kept:.1%} of the teacher's accuracy (target >= 97%)")


if __name__ == "__main__":
    main()
