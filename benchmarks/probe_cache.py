"""Repeated linear probes on MiniLM: the run's embedding cache vs re-encoding each time.

    python benchmarks/probe_cache.py [--probes 5]

On tweets (all labels), trains ``--probes`` linear probes with different
learning rates twice in one process: once through the transfer recipe as a
study runs it (the frozen encoder's train/val embeddings cached in the run's
shared folder, so the encoder runs once), once with no shared folder (every
probe re-encodes). Prints both times and the ratio (target >= 10x).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from assay.recipes import RecipeContext, make_recipe
from assay.study import load_task


def probes(task, work: Path, shared: Path | None, lrs: list[float]) -> list[float]:
    """Seconds for each probe in turn."""
    times = []
    for i, lr in enumerate(lrs):
        started = time.perf_counter()
        ctx = RecipeContext(task=task, work_dir=work / f"p{i}", progress=False, shared_dir=shared)
        make_recipe("transfer", {"lr": lr, "epochs": 100}, "probe").make(f"probe{i}", ctx)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lrs = [1e-2 / 2**i for i in range(args.probes)]
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        task = load_task({"builtin": "tweets"}, base_dir=Path("."), seed=0)
        cached = probes(task, Path(tmp) / "cached", Path(tmp) / "shared", lrs)
        fresh = probes(task, Path(tmp) / "fresh", None, lrs)
    n = len(task.train) + len(task.val)
    repeat_cached, repeat_fresh = sum(cached[1:]) / (len(cached) - 1), sum(fresh[1:]) / (len(fresh) - 1)
    print(f"task:                   tweets, {n} train+val texts, {args.probes} probes")
    print(f"with the cache:         {sum(cached):.1f} s in all; first probe {cached[0]:.1f} s (encodes), each repeat {repeat_cached:.2f} s")
    print(f"re-encoding each time:  {sum(fresh):.1f} s in all; each repeat {repeat_fresh:.2f} s")
    print(f"speed-up per repeated probe: {repeat_fresh / repeat_cached:.1f}x  (target >= 10x)")
    print(f"speed-up for all {args.probes} probes:   {sum(fresh) / sum(cached):.1f}x")


if __name__ == "__main__":
    main()
