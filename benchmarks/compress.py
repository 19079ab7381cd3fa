"""Compressing a MiniLM classifier on tweets: what each path buys, measured in one run.

    python benchmarks/compress.py [--device cpu] [--student-dim 128] [--student-depth 2]

The fp32 reference is MiniLM (all-MiniLM-L6-v2) with a linear head trained
on its frozen embeddings (the ``transfer`` recipe's linear probe). Against
it, on the same test tweets and the same machine:

* PyTorch dynamic int8 (the ``quantize`` recipe),
* ONNX Runtime fp32 and ONNX Runtime int8 (the ``export`` recipe),
* the chain: distil the classifier into a small transformer from the zoo
  (Hinton et al. 2015; same tokenizer), then ONNX Runtime int8.

Prints p50 latency at batch 1 and batch 32, size on disk, accuracy with a
95% bootstrap interval, and each variant's speed-up and size ratio against
fp32. Target for the best chain: >= 3x faster and >= 3x smaller with <= 1
point of accuracy lost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from assay.checks.efficiency import time_calls
from assay.stats import mean_interval
from assay.models.inputs import as_input
from assay.recipes import RecipeContext, make_recipe
from assay.study import load_task


def measure(candidate, task, device: torch.device) -> dict[str, float]:
    """Latency p50 at batch 1 and 32, size, accuracy with its interval."""
    x = as_input(task.test.x)
    candidate.to(device if not candidate.provenance.transforms else "cpu")
    logits = torch.cat([candidate.predict(x[i : i + 256]).cpu() for i in range(0, len(x), 256)])
    correct = (logits.argmax(1).numpy() == task.test.y).astype(float)
    low, high = mean_interval(correct, n_boot=1000, seed=0)
    one, batch = x[:1], x[:32]
    return {
        "p50_b1_ms": float(np.median(time_calls(lambda: candidate.predict(one), warmup=10, repeats=200, device=device, budget_s=20))),
        "p50_b32_ms": float(np.median(time_calls(lambda: candidate.predict(batch), warmup=3, repeats=50, device=device, budget_s=30))),
        "size_mb": candidate.deploy_bytes() / 1e6,
        "accuracy": float(correct.mean()), "low": low, "high": high,
        "parameters": candidate.parameter_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where the PyTorch variants run (ONNX Runtime runs on the CPU)")
    parser.add_argument("--student-dim", type=int, default=128)
    parser.add_argument("--student-depth", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        task = load_task({"builtin": "tweets"}, base_dir=Path("."), seed=0)
        made: dict = {}

        def make(name: str, kind: str, **options) -> float:
            started = time.perf_counter()
            ctx = RecipeContext(task=task, work_dir=Path(tmp) / name, device=device, candidates=made, progress=False, shared_dir=Path(tmp) / "shared")
            made[name] = make_recipe(kind, options, name).make(name, ctx)
            return time.perf_counter() - started

        timings = {
            "fp32 (MiniLM + head)": make("fp32", "transfer", encoder="minilm", strategy="linear-probe"),
            "PyTorch int8": make("torch-int8", "quantize", parent="fp32"),
            "ORT fp32": make("ort-fp32", "export", parent="fp32"),
            "ORT int8": make("ort-int8", "export", parent="fp32", precision="int8"),
            "distilled student": make("student", "distill", parent="fp32", arch="transformer",
                                      arch_options={"dim": args.student_dim, "depth": args.student_depth, "heads": 4}, epochs=40, patience=8, lr=1e-3),
        }
        timings["student + ORT int8"] = make("student-ort-int8", "export", parent="student", precision="int8")
        names = dict(zip(timings, made))
        rows = {label: measure(made[key], task, device) for label, key in names.items()}

    base = rows["fp32 (MiniLM + head)"]
    print(f"task: tweets, {len(task.test)} test tweets; torch threads {args.threads}; PyTorch variants on {device}, ONNX Runtime on the CPU\n")
    header = f"{'variant':22} {'params':>11} {'size MB':>8} {'p50 b1 ms':>10} {'p50 b32 ms':>11} {'accuracy [95% CI]':>24} {'faster b1':>9} {'faster b32':>10} {'smaller':>8} {'made in':>8}"
    print(header)
    print("-" * len(header))
    for label, r in rows.items():
        print(f"{label:22} {r['parameters']:>11,} {r['size_mb']:>8.2f} {r['p50_b1_ms']:>10.2f} {r['p50_b32_ms']:>11.2f} "
              f"{r['accuracy']:>8.3f} [{r['low']:.3f}, {r['high']:.3f}] {base['p50_b1_ms'] / r['p50_b1_ms']:>8.1f}x "
              f"{base['p50_b32_ms'] / r['p50_b32_ms']:>9.1f}x {base['size_mb'] / r['size_mb']:>7.1f}x {timings[label]:>7.0f}s")
    best = rows["student + ORT int8"]
    drop = base["accuracy"] - best["accuracy"]
    ok = base["p50_b1_ms"] / best["p50_b1_ms"] >= 3 and base["size_mb"] / best["size_mb"] >= 3 and drop <= 0.01
    print(f"\nbest chain (student + ORT int8): {base['p50_b1_ms'] / best['p50_b1_ms']:.1f}x faster at batch 1, "
          f"{base['p50_b32_ms'] / best['p50_b32_ms']:.1f}x at batch 32, {base['size_mb'] / best['size_mb']:.1f}x smaller, "
          f"accuracy change {-drop:+.3f}; target (>= 3x, >= 3x, <= 1 point lost): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
