"""PGD and APGD on 500 digits test images: assay's attacks against torchattacks (and pyautoattack) called directly.

One run, one thread (torch and BLAS, through threadpoolctl), two trained
CNNs (a standard one, which the attacks break almost everywhere, and a
PGD-trained one, Madry et al. 2018, where most examples stand to the last
step and stopping saves little), the same inputs, epsilon 0.1 (L-inf), 20 steps, one restart, a random start in
every library. Digits' builtin split keeps 15% for test (270 images); here
the split is 60/10/30, so the test split has 540 images and the first 500
are attacked. Pixels are already on [0, 1], the range torchattacks asks for.

assay runs twice, and each line names its setting:

* ``stop_when_fooled=True`` (the adversarial check's default): an example
  stops being stepped at its first fooling iterate, which is the point
  returned for it (AutoAttack likewise attacks only the points still
  standing, between restarts). APGD returns the same points either way; PGD's
  robust accuracy can only be lower per seed (an iterate that fooled the
  model is kept rather than stepped past).
* ``stop_when_fooled=False``: every example steps to the end, as the other
  libraries do (PGD then returns the last iterate, like torchattacks').

For each attack it prints the median time of ``REPEATS`` rounds, each round
running every library once, back to back, each library first in turn: the
thread's CPU time, which other processes on a shared machine move less than
the wall time (it still counts the cycles lost to a neighbour's use of the
caches), and the wall time; robust accuracy (right on the clean and on the
adversarial image); and the ratios: time (target <= 1.0x), as the median of
the rounds' ratios with their range, since a busy spell slows a round's
libraries alike, and the accuracy difference (target within 0.5 points).
Random starts differ between libraries, so robust accuracies are compared as
averages over the rounds' seeds. The load average at the start and the end
says how busy the machine was.

    python benchmarks/adversarial.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

EPS, STEPS, N, REPEATS = 0.1, 20, 500, 15
ASSAY = {True: "assay stop_when_fooled=True", False: "assay stop_when_fooled=False"}  # the check's default first


def _robust(model, adv, x, y) -> float:
    import torch

    with torch.no_grad():
        return float(((model(adv).argmax(1) == y) & (model(x).argmax(1) == y)).float().mean())


def _measure(runs: dict[str, Callable[[int], object]], model, x, y) -> dict[str, tuple[list[float], list[float], float]]:
    """Per library: the thread CPU and wall seconds of each of REPEATS seeds, and the mean robust accuracy over them.

    Every round runs each library once, back to back, so a round's libraries share the machine's load; the
    order rotates with the seed: measured in a fixed order, whichever library ran first in each round was
    up to 30% slower (under cProfile the three APGDs took the same 2.8 s).
    """
    for run in runs.values():
        run(99)  # warm-up: first-call costs are not the attack's
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    accs: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for seed in range(REPEATS):
        for name in names[seed % len(names):] + names[: seed % len(names)]:  # each library first in turn: no seat is favoured
            run = runs[name]
            started, started_cpu = time.perf_counter(), time.thread_time()
            adv = run(seed)
            cpu[name].append(time.thread_time() - started_cpu)
            wall[name].append(time.perf_counter() - started)
            accs[name].append(_robust(model, adv, x, y))
    return {name: (cpu[name], wall[name], statistics.mean(accs[name])) for name in runs}


def _paired(ours: list[float], theirs: list[float]) -> str:
    """The median of the rounds' time ratios and their range: a busy spell slows one round's libraries alike, so the
    ratio within a round moves less than either time."""
    ratios = sorted(a / b for a, b in zip(ours, theirs))
    return f"{statistics.median(ratios):.2f}x (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"


def main() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    load = os.getloadavg()[0]
    torch.set_num_threads(1)
    with threadpool_limits(1):
        _bench(load)


def _bench(load: float) -> None:
    import torch

    from assay.data.builtin import load_builtin
    from assay.models import attacks as A
    from assay.recipes import RecipeContext, make_recipe

    task = load_builtin("digits", seed=0, fractions=(0.6, 0.1, 0.3))
    net = {"arch": "cnn", "arch_options": {"channels": [16, 32]}}
    made = {}
    with tempfile.TemporaryDirectory() as work:
        for label, kind, options in (("digits CNN", "train", {"epochs": 20}),
                                     ("PGD-trained digits CNN", "adversarial", {"epochs": 20, "epsilon": EPS, "steps": 7})):
            made[label] = make_recipe(kind, {**net, **options}, "bench").make(
                kind, RecipeContext(task=task, work_dir=Path(work) / kind, progress=False)).model.eval()
    x, y = torch.as_tensor(task.test.x[:N]), torch.as_tensor(task.test.y[:N])
    for label, model in made.items():
        _compare(label, model, A.constraint_for(task, model), x, y)
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} at the end, {load:.1f} at the start, on {os.cpu_count()} cores")


def _compare(label: str, model, constraint, x, y) -> None:
    """Every library's PGD and APGD on ``model``: times, robust accuracies and the paired ratios."""
    import torch
    import torchattacks

    from assay.models import attacks as A

    alpha = 2.5 / STEPS  # Madry et al.'s step, as a fraction of epsilon
    print(f"{label}, {len(x)} test images, clean accuracy {_robust(model, x, x, y):.3f}; eps {EPS} (L-inf), {STEPS} steps, "
          f"1 thread; median of {REPEATS} runs")

    def theirs_pgd(seed: int):
        torch.manual_seed(seed)
        return torchattacks.PGD(model, eps=EPS, alpha=alpha * EPS, steps=STEPS, random_start=True)(x, y)

    def ours(attack, stop: bool):
        if attack is A.pgd:
            return lambda s: A.pgd(model, x, y, EPS, constraint, steps=STEPS, step_size=alpha, seed=s, stop_when_fooled=stop)
        return lambda s: A.apgd(model, x, y, EPS, constraint, steps=STEPS, seed=s, stop_when_fooled=stop)

    rows = {
        "PGD": [(ASSAY[True], ours(A.pgd, True)), (ASSAY[False], ours(A.pgd, False)), ("torchattacks", theirs_pgd)],
        "APGD-CE": [(ASSAY[True], ours(A.apgd, True)), (ASSAY[False], ours(A.apgd, False)),
                    ("torchattacks", lambda s: torchattacks.APGD(model, eps=EPS, steps=STEPS, n_restarts=1, seed=s, loss="ce")(x, y))],
    }
    try:
        from pyautoattack.autopgd_base import APGDAttack

        def reference(seed: int):
            attack = APGDAttack(model, n_iter=STEPS, norm="Linf", n_restarts=1, eps=EPS, seed=seed, loss="ce", device="cpu")
            return attack.perturb(x, y)

        rows["APGD-CE"].append(("pyautoattack", reference))
    except ImportError:
        print("pyautoattack not installed: APGD compared with torchattacks only")
    for attack, runs in rows.items():
        measured = _measure(dict(runs), model, x, y)
        for name, (cpu, wall, acc) in measured.items():
            print(f"{attack:8s} {name:29s} cpu {statistics.median(cpu):6.3f} s  wall {statistics.median(wall):6.3f} s  "
                  f"robust accuracy {acc:.4f}")
        for ours_name in ASSAY.values():
            ours_cpu, ours_wall, ours_acc = measured[ours_name]
            for name, (cpu, wall, acc) in measured.items():
                if name not in ASSAY.values():
                    print(f"{attack:8s} {ours_name:29s} vs {name:12s}  time ratio cpu {_paired(ours_cpu, cpu)}, wall "
                          f"{_paired(ours_wall, wall)} (target <= 1.0)  robust accuracy {100 * (ours_acc - acc):+.2f} points "
                          "(target within 0.5)")


if __name__ == "__main__":
    main()
