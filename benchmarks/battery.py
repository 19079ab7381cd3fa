"""The whole check battery on digits, 3 candidates: shared cache vs naive checks.

    python benchmarks/battery.py

Trains an MLP and a CNN on digits (classes 8 and 9 held out as near-OOD) and
quantizes the CNN, then, in one process on one machine:

1. runs every check except efficiency (whose timed calls are forward passes by
   definition) through one shared prediction cache, and times the forward
   passes the battery truly needs (each (candidate, split, view) once, with
   embeddings) as a bare loop;
2. runs the same checks written naively: each check gets a fresh cache, so it
   computes every prediction it reads itself.

Prints battery / bare-forward (target <= 1.3) and naive / shared.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from assay.checks import load_all
from assay.checks.base import CheckContext, make_check
from assay.checks.predictions import PredictionCache
from assay.models.inputs import as_input
from assay.data.views import apply_view
from assay.recipes import RecipeContext, make_recipe
from assay.study import load_task


def candidates(task, work: Path):
    made = {}
    for name, kind, options in (
        ("mlp", "train", {"arch": "mlp", "epochs": 30}),
        ("cnn", "train", {"arch": "cnn", "epochs": 30}),
        ("cnn-int8", "quantize", {"parent": "cnn"}),
    ):
        ctx = RecipeContext(task=task, work_dir=work / name, progress=False, candidates=made)
        made[name] = make_recipe(kind, options, name).make(name, ctx)
    return made


def run_battery(task, made, checks, shared: bool) -> tuple[float, PredictionCache | None]:
    cache = PredictionCache(None)
    started = time.perf_counter()
    if shared:  # as the study does: every declared need, each view materialised once
        cache.prefetch(list(made.values()), task, set().union(*(check.requests(task) for check in checks)))
    for check in checks:
        for candidate in made.values():
            ctx = CheckContext(task=task, predictions=cache if shared else PredictionCache(None), n_boot=1000, candidates=made)
            check.run(candidate, ctx)
    return time.perf_counter() - started, cache


def bare_forward(task, made, keys) -> float:
    """The forward passes in ``keys`` as a plain loop (views materialised beforehand)."""
    inputs = {(split, view): as_input(apply_view(task, split, view).x) for _, split, view, _ in keys}
    started = time.perf_counter()
    with torch.inference_mode():
        for name, split, view, embeddings in keys:
            model = made[name].model
            x = inputs[(split, view)]
            for i in range(0, len(x), 512):
                model.head(model.features(x[i : i + 512])) if embeddings else model(x[i : i + 512])
    return time.perf_counter() - started


def main() -> None:
    import tempfile

    with threadpool_limits(1), tempfile.TemporaryDirectory() as work:
        task = load_task({"builtin": "digits", "holdout_classes": ["8", "9"]}, base_dir=Path("."), seed=0)
        made = candidates(task, Path(work))
        checks = [make_check(name, {}) for name in load_all() if name != "efficiency"]
        run_battery(task, made, checks, shared=True)  # warm-up: first calls allocate and pick kernels
        shared_s, cache = min((run_battery(task, made, checks, shared=True) for _ in range(2)), key=lambda r: r[0])
        keys = [(name, split, view, p.embeddings is not None) for (cid, _, split, view), p in cache._memory.items() for name, c in made.items() if c.id == cid]
        bare_s = min(bare_forward(task, made, keys) for _ in range(3))
        naive_s, _ = run_battery(task, made, checks, shared=False)
    print(f"checks:                 {', '.join(c.name for c in checks)} (efficiency excluded: its timed calls are the forward passes)")
    print(f"forward passes needed:  {len(keys)} (candidate, split, view) passes, {sum(k[3] for k in keys)} of them with embeddings")
    print(f"shared-cache battery:   {shared_s:.2f} s  (best of 2 after a warm-up; in forward passes: {cache.forward_seconds:.2f} s)")
    print(f"bare forward passes:    {bare_s:.2f} s  (best of 3)")
    print(f"naive battery:          {naive_s:.2f} s  (each check computes its own predictions)")
    print(f"battery / bare forward: {shared_s / bare_s:.2f}  (target <= 1.3)")
    print(f"naive / shared:         {naive_s / shared_s:.2f}")


if __name__ == "__main__":
    main()
