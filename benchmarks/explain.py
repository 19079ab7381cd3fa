"""Integrated gradients on 200 digits test images: assay's chunked helper against Captum called directly.

One run, one thread, the same trained CNN, inputs, baseline and steps. For
n_steps 50, 200 and 1000 it prints the time and the peak memory (traced by
the growth of the process's peak resident size over its size before the
call, VmHWM reset through /proc, in a fresh child process per measurement) of:

* assay: ``models.gradients.integrated_gradients`` (chunk = 256 rows of example x step);
* Captum with ``internal_batch_size`` = 256 (the same batching);
* Captum without it (all 200 x n_steps rows in one pass).

Then the explain stage (saliency + IG + ablation + curves, a one-step
sanity cascade, completeness, infidelity and max-sensitivity; then the
check with every default, as a study runs it) against the bare forward and
backward passes it runs. Those are kept, not guessed: a forward hook on the
model keeps, for every pass the stage makes (the randomised copies'
included), its module, a copy of its input batch and whether a backward
pass followed. "bare" replays exactly those batches: forward only
(inference mode), or forward and backward of one logit a row; "bare (shared
batches)" runs the same inputs in the shared batch sizes (512 forward, 256
backward). The inputs matter: the same batches of tiled test images took
7% more CPU time than the stage's own inputs (median of 7, same model; the
values, not the shapes, differ), which made the stage look as fast as its
passes when they were the denominator. Each is timed in
``REPEATS`` rounds, each first in turn, on one thread (torch and BLAS,
through threadpoolctl); the ratio is the median over rounds of the stage's
thread CPU time over the bare passes' in the same round (a machine that
other processes slow for a while slows both), with the wall-time ratio and
the fastest-over-fastest one beside it.

    python benchmarks/explain.py               # both parts
    python benchmarks/explain.py --stage-only  # the explain stage alone
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path

CHUNK = 256
REPEATS = 9  # rounds of the explain stage and its bare passes, each first in turn


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

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
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


class _Passes:
    """A forward hook that keeps every pass a model makes: the module, a copy of its input batch, and whether a backward pass followed.

    A closure, not a bound method, is what the hook holds: ``copy.deepcopy`` (the randomisation cascade's copies) keeps a
    function as it is, so the copies' passes are kept here too, each with its own module.
    """

    def __init__(self) -> None:
        self.passes: list[dict] = []
        self.recording = True  # the copies keep the hook: replaying their passes must not record them again

    def attach(self, model):
        def hook(module, inputs, output) -> None:
            if not self.recording:
                return
            kept = {"module": module, "x": inputs[0].detach().clone(), "target": output.detach().argmax(1, keepdim=True), "backward": False}
            if output.requires_grad:  # marked when the backward pass reaches the output
                output.register_hook(lambda g: kept.update(backward=True))
            self.passes.append(kept)
        return model.register_forward_hook(hook)

    def rows(self, backward: bool) -> list[int]:
        return [len(p["x"]) for p in self.passes if p["backward"] == backward]


def _replay(passes: list[dict]) -> None:
    """The passes alone: each batch again, on its module, forward only (inference mode) or forward and backward of one logit a row."""
    import torch

    for p in passes:
        if p["backward"]:
            part = p["x"].requires_grad_(True)
            torch.autograd.grad(p["module"](part).gather(1, p["target"]).sum(), part)
        else:
            with torch.inference_mode():
                p["module"](p["x"])


def _rebatched(passes: list[dict], model, forward: int, backward: int) -> list[dict]:
    """The same rows on ``model``, forward-only ones ``forward`` a batch and the others ``backward`` a batch (the shared sizes)."""
    import torch

    out = []
    for grad, size in ((False, forward), (True, backward)):
        kept = [p for p in passes if p["backward"] == grad]
        if not kept:
            continue
        with torch.inference_mode(mode=not grad):
            x, target = torch.cat([p["x"] for p in kept]), torch.cat([p["target"] for p in kept])
        out += [{"module": model, "x": a, "target": t, "backward": grad} for a, t in zip(x.split(size), target.split(size))]
    return out


# The stage (its target: <= 1.3x its bare passes): saliency, IG at 50 steps, ablation, their curves and the random
# one's, a one-step sanity cascade, completeness, infidelity and max-sensitivity; then the check as a study runs it (every default).
TARGETED = "saliency + IG (50 steps) + ablation, 1-step sanity"
STAGES = {
    TARGETED: {"methods": ["saliency", "integrated_gradients", "ablation"], "n_steps": 50, "curve_steps": 16, "cascade_steps": 1},
    "every default (6 methods, 3-step sanity)": {},
}


def _stage(folder: str, options: dict, label: str) -> None:
    """The explain check with ``options`` on 200 images against the bare passes it runs (kept by ``_Passes``), in REPEATS rounds."""
    from assay.checks.base import CheckContext
    from assay.checks.explain import Explain
    from assay.checks.predictions import PredictionCache
    from assay.data.builtin import load_builtin
    from assay.models.candidate import Candidate

    task = load_builtin("digits", seed=0)
    cnn = Candidate.load(Path(folder), "cnn")
    model = cnn.model.eval()
    check = Explain(n_examples=200, **options)
    context = CheckContext(task=task, predictions=PredictionCache(None), n_boot=200)
    context.predict(cnn)
    check.run(cnn, context)  # warm-up: Captum's import (about 0.7 s here) and first-call costs are not the stage's
    passes = _Passes()
    handle = passes.attach(model)
    evidence = check.run(cnn, context)
    handle.remove()
    passes.recording = False
    best = next(e for e in evidence if e.metric == "faithfulness_gain").details["best_method"]
    forward, backward = passes.rows(False), passes.rows(True)
    shared = _rebatched(passes.passes, model, 512, check.chunk)
    runs = {
        "stage": lambda: check.run(cnn, context),
        # the same batches of the same inputs on the same modules (the randomised copy's, as the cascade left it)
        "bare": lambda: _replay(passes.passes),
        # the same inputs on the model in the shared batch sizes: 512 forward (models/forward.py), 256 backward (models/gradients.py)
        "bare (shared batches)": lambda: _replay(shared),
    }
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(REPEATS):
        for name in names[r % len(names):] + names[: r % len(names)]:  # each first in turn: no seat is favoured
            started, started_cpu = time.perf_counter(), time.thread_time()
            runs[name]()
            cpu[name].append(time.thread_time() - started_cpu)
            wall[name].append(time.perf_counter() - started)
    med = {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in runs}
    print(f"explain stage on 200 images, {label}, max-sensitivity of {best}; {REPEATS} rounds, thread CPU time (wall)")
    print(f"  passes the stage ran: {sum(forward)} forward rows in {len(forward)} batches, {sum(backward)} forward+backward rows in "
          f"{len(backward)} batches")
    for name, (c, w) in med.items():
        print(f"  {name:21s} median cpu {c:6.3f} s  wall {w:6.3f} s   (fastest cpu {min(cpu[name]):6.3f} s)")
    for name in ("bare", "bare (shared batches)"):
        # per round, the stage over the bare passes run next to it: a machine that slows down for a while slows both
        paired = statistics.median(s / b for s, b in zip(cpu["stage"], cpu[name]))
        paired_wall = statistics.median(s / b for s, b in zip(wall["stage"], wall[name]))
        print(f"  ratio stage / {name}: median of the rounds' ratios cpu {paired:.2f}x, wall {paired_wall:.2f}x; "
              f"fastest over fastest cpu {min(cpu['stage']) / min(cpu[name]):.2f}x" + (" (target <= 1.3)" if name == "bare" and label == TARGETED else ""))


def main() -> None:
    import argparse

    import torch
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage-only", action="store_true", help="only the explain stage against its bare passes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        _bench(args.stage_only)


def _bench(stage_only: bool) -> None:
    from assay.data.builtin import load_builtin
    from assay.recipes import RecipeContext, make_recipe

    folder = tempfile.mkdtemp()
    task = load_builtin("digits", seed=0)
    cnn = make_recipe("train", {"arch": "cnn", "epochs": 8, "arch_options": {"channels": [16, 32]}}, "bench").make(
        "cnn", RecipeContext(task=task, work_dir=Path(folder) / "work", progress=False))
    cnn.save(Path(folder))
    if stage_only:
        _stages(folder)
        return
    print(f"IG on 200 digits test images, chunk/internal_batch_size = {CHUNK}, 1 thread; peak = resident memory growth")
    print(f"{'n_steps':>7}  {'assay s':>8} {'MB':>6}  {'captum(batched) s':>17} {'MB':>6}  {'captum(one pass) s':>18} {'MB':>7}  {'time ratio':>10}")
    for n_steps in (50, 200, 1000):
        a = _run("assay", n_steps, folder)
        b = _run("captum_batched", n_steps, folder)
        c = _run("captum", n_steps, folder)
        print(f"{n_steps:>7}  {a[0]:>8.2f} {a[1]:>6.0f}  {b[0]:>17.2f} {b[1]:>6.0f}  {c[0]:>18.2f} {c[1]:>7.0f}  "
              f"{a[0] / b[0]:>5.2f}x / {a[0] / c[0]:.2f}x")
    _stages(folder)


def _stages(folder: str) -> None:
    for label, options in STAGES.items():
        _stage(folder, options, label)


if __name__ == "__main__":
    main()
