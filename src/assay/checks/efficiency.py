"""The ``efficiency`` check: how big, how fast, how much energy.

This is the one check that runs the model itself, because time is what it
measures: latency at batch 1 (p50, p95) and throughput at a large batch, on
real test inputs, after warm-up, with the device synchronised around each
timed call. Size is the exact length of the saved weights file. FLOPs come
from ``torch.utils.flop_counter`` (int8 matmuls are not counted by it, so a
quantized model reports its float parent's structure minus those layers; an
ONNX graph carries the count taken from its float model at export).
Peak memory is measured on CUDA; on the CPU it is estimated as weights plus
the largest layer input + output at the large batch. Energy per 1,000
predictions and for training follow ``energy.py``'s stated power model;
a candidate made without training (quantized, exported) has no training
energy of its own, and says so instead of reporting 0 (a "-100%" beside its
parent).
"""

from __future__ import annotations

import math

import time
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch

from ..models.inputs import as_input
from .base import Check, CheckContext, Evidence, register_check
from .metrics import REPORT, TERMINAL, Metric, declare
from .energy import GRID_G_PER_KWH, co2e_grams, power_model, rapl_joules
from ..stats import bootstrap, bootstrap_interval


def time_calls(fn, *, warmup: int, repeats: int, device: torch.device, budget_s: float = 5.0, minimum: int = 5) -> np.ndarray:
    """Wall time of up to ``repeats`` calls of ``fn`` in milliseconds, after ``warmup`` calls.

    A large model stops early once ``budget_s`` seconds are spent (after at
    least ``minimum`` calls), so timing a transformer does not take minutes;
    the evidence records how many calls were timed.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    out = []
    began = time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - start) * 1000)
        if len(out) >= minimum and time.perf_counter() - began > budget_s:
            break
    return np.array(out)


@register_check
class Efficiency(Check):
    """Parameters, size on disk, latency and throughput."""

    name = "efficiency"
    # Summary columns are taken in declaration order: latency, then size, then parameters.
    metrics = declare(
        Metric("latency_p50_ms", False, "median time to classify one input (batch of 1)", unit="ms", scale="amount",
               summary=(REPORT, TERMINAL)),
        Metric("latency_p95_ms", False, "95th percentile of the time to classify one input", unit="ms", scale="amount"),
        Metric("throughput_per_s", True, "inputs classified per second in large batches", unit="per s", scale="amount"),
        Metric("size_mb", False, "size of the weights to deploy, frozen pretrained ones included", unit="MB", scale="amount",
               summary=(REPORT, TERMINAL)),
        Metric("parameters", False, "number of parameters", scale="count", summary=(REPORT,)),
        Metric("flops_per_sample", False, "floating-point operations to classify one input", scale="count"),
        Metric("peak_memory_mb", False, "peak memory while classifying a large batch", unit="MB", scale="amount"),
        Metric("energy_per_1k_j", False, "energy to classify 1,000 inputs in large batches", unit="J", scale="amount"),
        Metric("training_energy_kj", False, "energy its own recipe's training took", unit="kJ", scale="amount"),
        Metric("training_co2e_g", False, "CO2-equivalent of that energy on the configured grid", unit="g", scale="amount"),
    )

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        e = records.get("latency_p95_ms")
        return f"p95 latency {e.interval_text()} ms" if e else ""
    needs = ()
    per_split = False  # size, speed and energy do not depend on which split is being judged

    def __init__(self, *, repeats: int = 100, warmup: int = 10, batch_size: int = 256, batch_repeats: int = 10, grid_g_per_kwh: float = GRID_G_PER_KWH) -> None:
        if min(repeats, batch_size, batch_repeats) < 1 or warmup < 0 or grid_g_per_kwh < 0:
            raise ValueError("repeats, batch_size and batch_repeats must be at least 1, warmup and grid_g_per_kwh at least 0")
        self.repeats, self.warmup, self.batch_size, self.batch_repeats = repeats, warmup, batch_size, batch_repeats
        self.grid_g_per_kwh = grid_g_per_kwh

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        device = context.predictions.device if not candidate.provenance.transforms else torch.device("cpu")
        candidate.to(device)
        x = as_input(context.task.test.x[: self.batch_size])
        reps = -(-self.batch_size // len(x))
        batch = x.repeat(reps, *([1] * (x.ndim - 1)))[: self.batch_size].to(device)
        one = x[:1].to(device)
        predict = getattr(candidate, "timed_predict", candidate.predict)  # a user's module is timed without assay's output checks
        single = time_calls(lambda: predict(one), warmup=self.warmup, repeats=self.repeats, device=device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rapl_before = rapl_joules()
        bulk = time_calls(lambda: predict(batch), warmup=1, repeats=self.batch_repeats, device=device, budget_s=5.0, minimum=3)
        rapl_after = rapl_joules()
        power = power_model(device)
        if rapl_before is not None and rapl_after is not None and rapl_after > rapl_before:
            joules_per_batch, energy_source = (rapl_after - rapl_before) / (len(bulk) + 1), "RAPL package counter"
        else:
            joules_per_batch, energy_source = power.watts * np.median(bulk) / 1000, power.source
        peak_mb, peak_source = _peak_memory(candidate, batch, device)
        def stats(index: np.ndarray) -> np.ndarray:
            return np.column_stack([np.percentile(single[index], 50, axis=1), np.percentile(single[index], 95, axis=1)])

        boot = {"n_boot": context.n_boot, "seed": context.seed}
        p50, p95 = np.median(single), np.percentile(single, 95)
        low, high = bootstrap_interval(bootstrap(stats, len(single), **boot), [p50, p95])
        per_s = self.batch_size / (bulk / 1000)
        throughput = np.median(per_s)
        t_low, t_high = bootstrap_interval(bootstrap(lambda idx: np.median(per_s[idx], axis=1), len(per_s), **boot), throughput)
        where = {"device": str(device), "threads": torch.get_num_threads()}
        count, size, flops = candidate.parameter_count(), candidate.deploy_bytes(), candidate.flops_per_sample(one)
        out = [
            self.evidence(candidate, "parameters", math.nan if count is None else count),
            self.evidence(candidate, "size_mb", math.nan if size is None else size / 1e6,
                          details={"weights_file_mb": len(candidate.to_bytes()) / 1e6, "includes": "frozen pretrained weights read from their source, if any"}),
            self.evidence(candidate, "latency_p50_ms", p50, (low[0], high[0]),
                          details={"batch1_ms": np.round(single, 4).tolist(), "calls_timed": len(single), **where}, figures=("latency",)),
            self.evidence(candidate, "latency_p95_ms", p95, (low[1], high[1]), details=where),
            self.evidence(candidate, "throughput_per_s", throughput, (t_low, t_high),
                          details={"batch_size": self.batch_size, "batch_ms": np.round(bulk, 4).tolist(), **where}),
            self.evidence(candidate, "flops_per_sample", flops, details={"counter": "torch.utils.flop_counter"}),
            self.evidence(candidate, "peak_memory_mb", peak_mb, details={"how": peak_source, "batch_size": self.batch_size}),
            self.evidence(candidate, "energy_per_1k_j", joules_per_batch * 1000 / self.batch_size,
                          details={"power": energy_source, "co2e_per_1k_g": co2e_grams(joules_per_batch * 1000 / self.batch_size, self.grid_g_per_kwh)}),
        ]
        unknown = [m for m, v in (("parameters", count), ("size_mb", size), ("flops_per_sample", flops)) if v is None or v != v]
        skips: list[tuple[list[str], str]] = []
        if unknown:  # a user's black box: its insides are not ours to count, and 0 would win "minimise size_mb"
            out = [e for e in out if e.metric not in unknown]
            skips.append((unknown, f"{', '.join(unknown)} unknown: '{candidate.name}' is a black box (a predict_proba object or a callable) "
                                   "whose weights assay cannot see"))
        if "train_seconds" not in candidate.training:
            # Never trained here (quantized, exported, or loaded without a record): 0 kJ would read as "-100%" beside its parent.
            recipe = candidate.provenance.recipe
            parent = f"; its parent '{candidate.provenance.parent}' carries the training cost" if candidate.provenance.parent else ""
            made = "was trained outside assay" if recipe == "external" else f"was made by '{recipe}' without training{parent}"
            skips.append((["training_energy_kj", "training_co2e_g"], f"training_energy_kj and training_co2e_g not applicable: '{candidate.name}' {made}"))
        if skips:  # one skip record per check and candidate, naming every metric it stands for
            reason = "; ".join(r for _, r in skips)
            return [*out, replace(self.skipped(candidate, reason), details={"reason": reason, "metrics": [m for ms, _ in skips for m in ms]})]
        train_j = candidate.training["train_seconds"] * power.watts
        return [
            *out,
            self.evidence(candidate, "training_energy_kj", train_j / 1000,
                          details={"train_seconds": candidate.training["train_seconds"], "power": power.source,
                                   "note": "derived candidates report their own recipe's cost only"}),
            self.evidence(candidate, "training_co2e_g", co2e_grams(train_j, self.grid_g_per_kwh), details={"grid_g_per_kwh": self.grid_g_per_kwh}),
        ]


def _peak_memory(candidate, batch: torch.Tensor, device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        candidate.predict(batch)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 1e6, "measured: torch.cuda.max_memory_allocated"
    largest = [0]

    def hook(module, inputs, output):
        size = sum(t.numel() * t.element_size() for t in (*inputs, output) if isinstance(t, torch.Tensor))
        largest[0] = max(largest[0], size)

    leaves = [m for m in candidate.model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        candidate.predict(batch)
    finally:
        for h in handles:
            h.remove()
    return (len(candidate.to_bytes()) + largest[0]) / 1e6, "estimated: weights + largest layer input and output"
