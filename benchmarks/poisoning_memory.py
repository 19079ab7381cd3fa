"""Peak memory of poisoning detection on a large training split: streamed from the cache's memory map, whole in memory, and ART.

A synthetic split of penultimate features, written once in the prediction
cache's own format (``checks/feature_files.py``: a ``.npy`` written in
chunks, its checksum recorded): N rows x D = 256 float32 features, K
classes, each class a Gaussian around its own mean with a shared anisotropic
covariance; a planted share of rows taken from the other classes, shifted
along one "trigger" direction and relabelled to class 0 (a BadNets-like
group: examples of many kinds behind one label). Then, each in a fresh
process (``spawn``), with one thread:

* **assay, streamed**: the cache's read path (``open_features``: a read-only
  memory map, checked chunk by chunk against its record) and ``detect``,
  which copies one class's rows at a time;
* **assay, whole array**: the same ``detect`` on the features loaded whole
  with ``np.load`` (what the cache did before: its ``.npz`` could only be
  read whole; its checksum then also copied the array once more, which is
  not counted here);
* **ART 1.20** ``SpectralSignatureDefense`` (defaults, batch 256), given the
  same features loaded whole, through a ``PyTorchClassifier`` whose only layer
  is the identity, so its "activations" are the features themselves.

The figure is the growth of the process's **anonymous** resident memory
(``RssAnon`` in ``/proc/<pid>/status``) above its value just before the step,
sampled every millisecond by the parent process; mapped file pages are
file-backed and clean (the kernel drops them under pressure), so they are not
the process's own. The growth of ``VmHWM`` (resident, file pages included) is
printed beside it. Everything the step needs but does not allocate (imports,
the labels, first-call buffers of BLAS and scikit-learn) is loaded and warmed
up before the step, in both paths alike.

Two splits with the same largest class (30,000 rows): N = 200,000 in 10
classes with 5% planted, and N = 400,000 in 20 classes with 2.5% planted.
Target: the streamed peak follows the largest class (about its rows x D x 8
bytes: float64), not N.

Measured here (2 shared cores, one thread): streamed 94.8 MB at N = 200k and
96.7 MB at N = 400k (the 59 MB class in float64, plus the silhouette's
2,000 x 2,000 sample distances); whole array 292 MB and 487 MB (3.1x and
5.0x); ART 1,092 MB and 1,905 MB (11.5x and 19.7x). Streamed and whole-array
flags are identical (recall 1.000, FPR 0.000). Recall and FPR are printed to
show each detector ran on the same data, not to rank them: ART's untuned
defence flags a fixed share of every class (1.5 x 1/3 of it), and its score
projects the *uncentred* features, which on these features ranks the
planted rows lowest (recall 0.000 at FPR 0.52).

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/poisoning_memory.py
    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/poisoning_memory.py --splits 20000:10:0.05   # a quick run
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

D = 256
TARGET = 0
SAMPLE_SECONDS = 0.001


def _status_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def make_split(folder: Path, n: int, classes: int, planted: float, seed: int = 0) -> dict:
    """Write the synthetic split (features in the cache's format, labels, truth) under ``folder``; return its record."""
    import numpy as np

    from assay.checks.feature_files import writing_features

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(classes, D))
    mixing = rng.normal(size=(D, D)) / np.sqrt(D) * rng.uniform(0.2, 1.5, size=D)  # a shared anisotropic covariance
    trigger = rng.normal(size=D)
    trigger *= 4.0 / np.linalg.norm(trigger)
    labels = rng.integers(0, classes, n)
    poisoned = rng.choice(np.flatnonzero(labels != TARGET), int(round(planted * n)), replace=False)
    truth = np.zeros(n, bool)
    truth[poisoned] = True
    with writing_features(folder / "train.features.npy", n) as sink:
        for start in range(0, n, 8192):  # generated and written a block at a time, as the forward pass would
            y = labels[start : start + 8192]
            block = means[y] + rng.normal(size=(len(y), D)) @ mixing
            block[truth[start : start + 8192]] += trigger
            sink.put(start, block.astype(np.float32))
    labels[poisoned] = TARGET
    np.save(folder / "labels.npy", labels)
    np.save(folder / "truth.npy", truth)
    return {"record": sink.record.as_json(), "largest": int(np.bincount(labels).max())}


def _warm_up(kind: str) -> None:
    """First-call costs (lazy imports, BLAS and scikit-learn buffers, ART's hooks) paid before the step."""
    import numpy as np

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 200)
    f = (rng.normal(size=(600, D)) + np.eye(3, D)[y] * 5).astype(np.float32)
    if kind == "art":
        _art(f, y)
    else:
        from assay.checks.poisoning_math import detect

        detect(f, y, seed=0)


def _art(features, labels):
    """ART's SpectralSignatureDefense on ``features``: an identity "model" whose last layer's activations are its input."""
    import numpy as np
    import torch
    from art.defences.detector.poison import SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier
    from torch import nn

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.identity = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.identity(x)

    classes = int(labels.max()) + 1
    clf = PyTorchClassifier(model=Features(), loss=nn.CrossEntropyLoss(), input_shape=(features.shape[1],), nb_classes=classes,
                            device_type="cpu")
    onehot = np.eye(classes, dtype=np.float32)[labels]
    _, is_clean = SpectralSignatureDefense(clf, features, onehot, batch_size=256).detect_poison()
    return np.asarray(is_clean) == 0


def _measure(kind: str, folder: str, record: dict, queue, go) -> None:
    """In a fresh process: set up, say "ready" with the anonymous memory now, wait for "go", run the step, report."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from assay.checks.feature_files import open_features
    from assay.checks.poisoning_math import detect

    labels = np.load(Path(folder) / "labels.npy")
    truth = np.load(Path(folder) / "truth.npy")
    _warm_up(kind)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to the current resident size
    queue.put(("ready", _status_kb("self", "RssAnon"), _status_kb("self", "VmHWM")))
    go.wait()
    started = time.perf_counter()
    path = Path(folder) / "train.features.npy"
    if kind == "streamed":
        found = detect(open_features(path, record), labels, seed=0)
    elif kind == "whole":
        found = detect(np.load(path), labels, seed=0)
    if kind == "art":
        flagged = _art(np.load(path), labels)
    else:
        flagged = np.zeros(len(labels), bool)
        for rows, finding in found.values():
            flagged[rows[finding.flagged]] = True
    seconds = time.perf_counter() - started
    hwm = _status_kb("self", "VmHWM")
    queue.put(("done", seconds, hwm, int((flagged & truth).sum()), int(truth.sum()), int((flagged & ~truth).sum()),
               int((~truth).sum()), hashlib.sha256(np.flatnonzero(flagged).tobytes()).hexdigest()))


def run(kind: str, folder: Path, record: dict) -> dict:
    """One measurement in a fresh process; the parent samples the child's RssAnon until it reports."""
    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_measure, args=(kind, str(folder), record, queue, go))
    child.start()
    _, anon_before, hwm_before = queue.get()
    peak = anon_before
    go.set()
    done = None
    while done is None:
        try:
            peak = max(peak, _status_kb(child.pid, "RssAnon"))
        except (FileNotFoundError, ProcessLookupError):
            pass
        try:
            done = queue.get(timeout=SAMPLE_SECONDS)
        except Exception:  # queue.Empty: keep sampling
            continue
    child.join()
    _, seconds, hwm_after, tp, positives, fp, negatives, digest = done
    return {"anon_mb": (peak - anon_before) / 1024, "hwm_mb": (hwm_after - hwm_before) / 1024, "seconds": seconds,
            "recall": tp / positives, "fpr": fp / negatives, "flags": digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["200000:10:0.05", "400000:20:0.025"],
                        help="N:classes:planted share, one per split")
    parser.add_argument("--no-art", action="store_true", help="skip ART")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the children inherit it: one BLAS thread, as in the tests
    kinds = ["streamed", "whole"] + ([] if args.no_art else ["art"])
    for spec in args.splits:
        n, classes, planted = int(spec.split(":")[0]), int(spec.split(":")[1]), float(spec.split(":")[2])
        with tempfile.TemporaryDirectory() as folder:
            made = make_split(Path(folder), n, classes, planted)
            whole_mb = n * D * 4 / 2**20
            class_mb = made["largest"] * D * 8 / 2**20
            print(f"\nN = {n:,} x D = {D} float32 ({whole_mb:.0f} MB), {classes} classes, {planted:.1%} planted into class {TARGET}; "
                  f"largest class {made['largest']:,} rows ({class_mb:.0f} MB as float64)")
            results = {kind: run(kind, Path(folder), made["record"]) for kind in kinds}
        for kind, r in results.items():
            print(f"  {kind:9s} anonymous peak growth {r['anon_mb']:7.1f} MB  (= {r['anon_mb'] / class_mb:4.2f} x largest class, "
                  f"{r['anon_mb'] / whole_mb:4.2f} x N x D)   VmHWM growth {r['hwm_mb']:7.1f} MB   {r['seconds']:6.2f} s   "
                  f"recall {r['recall']:.3f}  FPR {r['fpr']:.4f}")
        same = results["streamed"]["flags"] == results["whole"]["flags"]
        print(f"  streamed and whole-array flags {'identical' if same else 'DIFFER'}; ratio of anonymous peaks: "
              f"whole / streamed {results['whole']['anon_mb'] / results['streamed']['anon_mb']:.2f}x"
              + (f", ART / streamed {results['art']['anon_mb'] / results['streamed']['anon_mb']:.2f}x" if "art" in results else ""))


if __name__ == "__main__":
    main()
