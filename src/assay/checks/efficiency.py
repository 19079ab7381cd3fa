"""The ``efficiency`` check: how big and how fast.

This is the one check that runs the model itself, because time is what it
measures: latency at batch 1 (p50, p95) and throughput at a large batch, on
real test inputs, after warm-up, with the device synchronised around each
timed call. Size is the exact length of the saved weights file.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .base import Check, CheckContext, Evidence, register_check
from .stats import bootstrap, percentile_interval


def time_calls(fn, *, warmup: int, repeats: int, device: torch.device) -> np.ndarray:
    """Wall time of ``repeats`` calls of ``fn`` in milliseconds, after ``warmup`` calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        out[i] = (time.perf_counter() - start) * 1000
    return out


@register_check
class Efficiency(Check):
    """Parameters, size on disk, latency and throughput."""

    name = "efficiency"
    metrics = {"parameters": False, "size_mb": False, "latency_p50_ms": False, "latency_p95_ms": False, "throughput_per_s": True}
    needs = ()

    def __init__(self, *, repeats: int = 100, warmup: int = 10, batch_size: int = 256, batch_repeats: int = 10) -> None:
        if min(repeats, batch_size, batch_repeats) < 1 or warmup < 0:
            raise ValueError("repeats, batch_size and batch_repeats must be at least 1, warmup at least 0")
        self.repeats, self.warmup, self.batch_size, self.batch_repeats = repeats, warmup, batch_size, batch_repeats

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        device = context.predictions.device if not candidate.provenance.transforms else torch.device("cpu")
        candidate.to(device)
        x = torch.as_tensor(context.task.test.x, dtype=torch.float32)
        reps = -(-self.batch_size // len(x))
        batch = x.repeat(reps, *([1] * (x.ndim - 1)))[: self.batch_size].to(device)
        one = x[:1].to(device)
        single = time_calls(lambda: candidate.predict(one), warmup=self.warmup, repeats=self.repeats, device=device)
        bulk = time_calls(lambda: candidate.predict(batch), warmup=max(1, self.warmup // 5), repeats=self.batch_repeats, device=device)

        def stats(index: np.ndarray) -> np.ndarray:
            return np.column_stack([np.percentile(single[index], 50, axis=1), np.percentile(single[index], 95, axis=1)])

        low, high = percentile_interval(bootstrap(stats, len(single), n_boot=context.n_boot, seed=context.seed))
        per_s = self.batch_size / (bulk / 1000)
        t_low, t_high = np.percentile(per_s, [2.5, 97.5])
        where = {"device": str(device), "threads": torch.get_num_threads()}
        return [
            self.evidence(candidate, "parameters", candidate.parameter_count()),
            self.evidence(candidate, "size_mb", len(candidate.to_bytes()) / 1e6),
            self.evidence(candidate, "latency_p50_ms", np.median(single), (low[0], high[0]),
                          details={"batch1_ms": np.round(single, 4).tolist(), **where}, figures=("latency",)),
            self.evidence(candidate, "latency_p95_ms", np.percentile(single, 95), (low[1], high[1]), details=where),
            self.evidence(candidate, "throughput_per_s", np.median(per_s), (t_low, t_high),
                          details={"batch_size": self.batch_size, "batch_ms": np.round(bulk, 4).tolist(), **where}),
        ]
