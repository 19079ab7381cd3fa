"""Judging a model given in code costs no more than judging the same weights as a built-in candidate.

    python benchmarks/judge_overhead.py [--repeats 3] [--epochs 15]

Trains a zoo ``mlp`` on digits with a study, then judges its weights two ways
with the same checks, data, seed and resamples, alternating, ``--repeats``
times each:

(a) built-in: a study file whose one recipe is ``kind = "load"`` of the saved
    ``mlp.safetensors`` (``Study.from_file(...).run()``);
(b) in memory: ``assay.judge`` of the same ``nn.Module`` (the zoo
    ``Classifier``, loaded from those files), wrapped by ``models/foreign.py``.

Each call is timed whole (task, candidate, checks, decision, report) and by
stage (``StudyResult.timings``): ``evaluate_s`` is the check battery,
``forward_s`` the prediction cache's forward passes, which every check but
efficiency reads; "cached passes" counts the (split, view) prediction files
the run's one cache wrote, and ``latency_p50_ms`` is what efficiency measured
(for (b), through the adapter that validates every batch's outputs). One torch thread, one BLAS thread. Prints the medians and
(b) / (a); target <= 1.1. Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

CHECKS = ["performance", "calibration", "robustness", "ood", "slices", "efficiency"]
N_BOOT = 1000
TARGET = 1.1


def _study(folder: Path, name: str, recipe: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nseed = 0\n\n[task]\nbuiltin = "digits"\n\n[[recipe]]\n{recipe}\n'
                    f"[checks]\nrun = {CHECKS!r}\nn_boot = {N_BOOT}\n\n[policy]\ngates = []\nobjectives = [\"maximise accuracy\"]\n".replace("'", '"'))
    return path


def _timed(call) -> tuple[float, dict[str, float]]:
    """Seconds for the whole call, and its stage timings with the prediction cache's passes (one file per split x view)."""
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    (latency,) = {e.value for e in result.evidence if e.metric == "latency_p50_ms"}
    return seconds, {**result.timings, "passes": len(list(result.run_dir.glob("predictions/*/*.npz"))), "latency_ms": latency}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    import assay
    from assay.store import Store
    from assay.study import Study

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        tmp = Path(tmp)
        trained = Study.from_file(_study(tmp, "train", f'name = "mlp"\nkind = "train"\narch = "mlp"\nepochs = {args.epochs}\n'),
                                  out=tmp / "runs", progress=False).run()
        weights = trained.run_dir / "candidates" / "mlp.safetensors"
        if not weights.is_file():
            raise SystemExit(f"{weights}: the trained candidate is not where the benchmark expects it")
        net = Store(tmp / "runs").load_candidate(trained.run_id, "mlp").model  # the zoo Classifier, an nn.Module
        built_in = _study(tmp, "built-in", f'name = "mlp"\nkind = "load"\npath = "{weights}"\n')

        def run_built_in():
            return Study.from_file(built_in, out=tmp / "runs", progress=False, new=True).run()

        def run_in_memory():  # the data as the user holds it: loaded here, inside the timed call
            task = assay.load_builtin("digits", seed=0)
            return assay.judge({"mlp": net}, task, checks=CHECKS, policy={"gates": [], "objectives": ["maximise accuracy"]},
                               out=tmp / "runs", n_boot=N_BOOT, progress=False, new=True)

        run_built_in(), run_in_memory()  # warm both paths (imports, first-call allocations); not timed
        times = {"built-in": [], "in memory": []}
        stages = {"built-in": [], "in memory": []}
        for _ in range(args.repeats):  # alternated, so a slow spell on a shared machine hits both
            for label, call in (("built-in", run_built_in), ("in memory", run_in_memory)):
                seconds, timings = _timed(call)
                times[label].append(seconds)
                stages[label].append(timings)

    def median(label: str, key: str | None = None) -> float:
        return statistics.median(times[label] if key is None else [t[key] for t in stages[label]])

    print(f"task: digits (test 270 images); checks: {', '.join(CHECKS)}; n_boot {N_BOOT}; torch threads {torch.get_num_threads()}, BLAS threads 1")
    print(f"{'':>10}  {'whole call':>10}  {'evaluate':>9}  {'forward':>8}  {'report':>7}  {'cached passes':>13}  {'latency_p50_ms':>14}   (median of {args.repeats}, seconds)")
    for label in times:
        print(f"{label:>10}  {median(label):10.3f}  {median(label, 'evaluate_s'):9.3f}  {median(label, 'forward_s'):8.3f}  {median(label, 'report_s'):7.3f}"
              f"  {median(label, 'passes'):13.0f}  {median(label, 'latency_ms'):14.4f}   runs: {', '.join(f'{t:.2f}' for t in times[label])}")
    ratio = median("in memory") / median("built-in")
    evaluate_ratio = median("in memory", "evaluate_s") / median("built-in", "evaluate_s")
    print(f"in memory / built-in: {ratio:.3f} whole call, {evaluate_ratio:.3f} check battery (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
