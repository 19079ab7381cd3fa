"""Integrated gradients on 200 digits test images: assay's chunked helper against Captum called directly.

One run, one thread, the same trained CNN, inputs, baseline and steps. For
n_steps 50, 200 and 1000 it prints the time and the peak memory (traced by
the growth of the process's peak resident size over its size before the
call, VmHWM reset through /proc, in a fresh child process per measurement) of:

* assay: ``models.gradients.integrated_gradients`` (chunk = 256 rows of example x step);
* Captum with ``internal_batch_size`` = 256 (the same batching);
* Captum without it (all 200 x n_steps rows in one pass).

Then the explain stage (saliency + IG + ablation + curves, a one-step
sanity cascade, infidelity and max-sensitivity) against the bare forward
and backward passes it needs.

    python benchmarks/explain.py
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

CHUNK = 256


def _reset_peak() -> None:
    """Linux: set the process's peak resident size (VmHWM) back to its current size."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(kind: str, n_steps: int, folder: str, out) -> None:
    """In a fresh process: load the CNN, run one attribution, report seconds and peak RSS growth (MB)."""
    import torch

    from assay.data.builtin import load_builtin
    from assay.models.candidate import Candidate
    from assay.models.gradients import integrated_gradients

    torch.set_num_threads(1)
    task = load_builtin("digits", seed=0)
    model = Candidate.load(Path(folder), "cnn").model.eval()
    x = torch.as_tensor(task.test.x[:200])
    target = model(x).argmax(1)
    base = torch.zeros_like(x)
    from captum.attr import IntegratedGradients

    integrated_gradients(model, x[:2], target[:2], base[:2], n_steps=4)  # warm both paths: first-call costs are not the method's
    IntegratedGradients(model).attribute(x[:2], baselines=base[:2], target=target[:2], n_steps=4)
    _reset_peak()
    before = _peak_kb()
    started = time.perf_counter()
    if kind == "assay":
        integrated_gradients(model, x, target, base, n_steps=n_steps, chunk=CHUNK)
    else:
        batch = CHUNK if kind == "captum_batched" else None
        IntegratedGradients(model).attribute(x, baselines=base, target=target, n_steps=n_steps, internal_batch_size=batch)
    out.put((time.perf_counter() - started, (_peak_kb() - before) / 1024))


def _run(kind: str, n_steps: int, folder: str) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(kind, n_steps, folder, q))
    p.start()
    result = q.get()
    p.join()
    return result


def _stage(folder: str) -> tuple[float, float]:
    """Seconds of the explain check (no randomisation cascade) and of the bare passes it needs."""
    import numpy as np
    import torch

    from assay.checks.base import CheckContext
    from assay.checks.explain import Explain
    from assay.checks.predictions import PredictionCache
    from assay.data.builtin import load_builtin
    from assay.models.candidate import Candidate
    from assay.models.forward import forward_pass

    torch.set_num_threads(1)
    task = load_builtin("digits", seed=0)
    cnn = Candidate.load(Path(folder), "cnn")
    check = Explain(n_examples=200, methods=["saliency", "integrated_gradients", "ablation"], n_steps=50, curve_steps=16)
    context = CheckContext(task=task, predictions=PredictionCache(None), n_boot=200)
    context.predict(cnn)
    # the check's own figures minus the sanity cascade and drift: time run() with randomisation off
    check.cascade_steps = 1
    started = time.perf_counter()
    evidence = check.run(cnn, context)
    stage = time.perf_counter() - started
    best = next(e for e in evidence if e.metric == "faithfulness_gain").details["best_method"]
    # The bare passes: 1 backward (saliency) + 50 backward rows (IG) per example; 65 ablation rows + 4 x 2 x 17 curve rows forward;
    # and the one-step randomisation cascade repeats the attributions once.
    x = torch.as_tensor(task.test.x[:200])
    target = cnn.model(x).argmax(1)
    started = time.perf_counter()
    for _ in range(2):  # original + one randomised copy
        rows, targets = x.repeat(51, 1, 1, 1), target.repeat(51)
        for part, t in zip(rows.split(CHUNK), targets.split(CHUNK)):
            part = part.clone().requires_grad_(True)
            torch.autograd.grad(cnn.model(part).gather(1, t[:, None]).sum(), part)
        forward_pass(cnn.model, np.repeat(task.test.x[:200], 65, axis=0))
    forward_pass(cnn.model, np.repeat(task.test.x[:200], 4 * 2 * 17, axis=0))
    # Yeh et al.'s measures: infidelity's removal perturbations, forward only, for each method; max-sensitivity re-runs the
    # most faithful method on noisy copies of the first examples.
    forward_pass(cnn.model, np.repeat(task.test.x[:200], check.infidelity_samples * 3, axis=0))
    noisy = np.repeat(task.test.x[: check.sensitivity_examples], check.sensitivity_samples, axis=0)
    if best == "ablation":
        forward_pass(cnn.model, np.repeat(noisy, 65, axis=0))
    else:
        rows = torch.as_tensor(noisy).repeat(50 if best == "integrated_gradients" else 1, 1, 1, 1)
        for part in rows.split(CHUNK):
            part = part.clone().requires_grad_(True)
            torch.autograd.grad(cnn.model(part).max(1).values.sum(), part)
    bare = time.perf_counter() - started
    return stage, bare


def main() -> None:
    import torch

    from assay.data.builtin import load_builtin
    from assay.recipes import RecipeContext, make_recipe

    torch.set_num_threads(1)
    folder = tempfile.mkdtemp()
    task = load_builtin("digits", seed=0)
    cnn = make_recipe("train", {"arch": "cnn", "epochs": 8, "arch_options": {"channels": [16, 32]}}, "bench").make(
        "cnn", RecipeContext(task=task, work_dir=Path(folder) / "work", progress=False))
    cnn.save(Path(folder))
    print(f"IG on 200 digits test images, chunk/internal_batch_size = {CHUNK}, 1 thread; peak = resident memory growth")
    print(f"{'n_steps':>7}  {'assay s':>8} {'MB':>6}  {'captum(batched) s':>17} {'MB':>6}  {'captum(one pass) s':>18} {'MB':>7}  {'time ratio':>10}")
    for n_steps in (50, 200, 1000):
        a = _run("assay", n_steps, folder)
        b = _run("captum_batched", n_steps, folder)
        c = _run("captum", n_steps, folder)
        print(f"{n_steps:>7}  {a[0]:>8.2f} {a[1]:>6.0f}  {b[0]:>17.2f} {b[1]:>6.0f}  {c[0]:>18.2f} {c[1]:>7.0f}  "
              f"{a[0] / b[0]:>5.2f}x / {a[0] / c[0]:.2f}x")
    _stage(folder)  # a first run pays Captum's import (about 0.7 s here) and first-call costs; the second is measured
    stage, bare = _stage(folder)
    print(f"explain stage (saliency, IG 50 steps, ablation, curves, 1-step sanity, infidelity, max-sensitivity) on 200 images: {stage:.2f} s; "
          f"bare forward+backward passes it needs: {bare:.2f} s; ratio {stage / bare:.2f}x")


if __name__ == "__main__":
    main()
