"""How high can a linear probe on frozen MiniLM go on tweets, against a GRU from few labels?

    python benchmarks/probe_ceiling.py [--draws 5] [--k 8]

The question behind "does transfer beat scratch with 8 labels per class?".
Prints, on the same test tweets:
  * the link rule alone (a tweet with a link came from the iPhone);
  * the probe's ceiling: scikit-learn's logistic regression on the MiniLM
    embeddings of *every* training tweet, at several regularisation strengths
    (the best of them is read off the test set, so it is an optimistic bound);
  * per labelled draw of k tweets per class: the same probe trained on them
    (best regularisation, again optimistic) and assay's GRU from scratch.
Both probe figures pick C on the test set, so they bound what tuning the
probe's training could reach; the all-label ceiling says how many labels the
probe needs to match what the GRU does with k.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from assay.models.inputs import as_input
from assay.models.pretrained import TextEncoder
from assay.recipes import RecipeContext, make_recipe
from assay.recipes.transfer import encode_splits
from assay.study import load_task

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def best_probe(x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> tuple[float, float]:
    """(test accuracy, C) of the best logistic-regression probe over C_GRID."""
    from sklearn.linear_model import LogisticRegression

    scores = [((LogisticRegression(C=c, max_iter=5000).fit(x, y).predict(test_x) == test_y).mean(), c) for c in C_GRID]
    return max(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--k", type=int, default=8, help="labelled tweets per class")
    args = parser.parse_args()
    torch.set_num_threads(2)
    task = load_task({"builtin": "tweets"}, base_dir=Path("."), seed=0)
    test_y = task.test.y
    links = np.array(["http" in t for t in task.test.meta["text"]])
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        feats = encode_splits(TextEncoder("minilm").eval(), task, ("train", "test"), Path(tmp), "minilm")
        rows = {row.tobytes(): i for i, row in enumerate(task.train.x)}
        ceiling, c = best_probe(feats["train"], task.train.y, feats["test"], test_y)
        print(f"test tweets: {len(test_y)}; link rule alone: {(links == (test_y == 1)).mean():.3f}")
        print(f"probe on all {len(task.train)} training tweets (best C = {c:g} of {C_GRID}): {ceiling:.3f}")
        print(f"{args.k} labelled tweets per class, by draw:")
        probe_acc, gru_acc = [], []
        for draw in range(1, args.draws + 1):
            few = task.with_labels_per_class(args.k, seed=0, draw=draw)
            index = [rows[row.tobytes()] for row in few.train.x]
            probe_acc.append(best_probe(feats["train"][index], few.train.y, feats["test"], test_y)[0])
            context = RecipeContext(task=few, work_dir=Path(tmp) / f"gru{draw}", progress=False)
            gru = make_recipe("train", {"arch": "gru", "epochs": 60, "patience": 15}, "gru").make("gru", context)
            gru_acc.append(float((gru.predict(as_input(task.test.x)).argmax(1).numpy() == test_y).mean()))
            print(f"  draw {draw}: probe {probe_acc[-1]:.3f}   GRU from scratch {gru_acc[-1]:.3f}")
    print(f"mean over {args.draws} draws: probe {np.mean(probe_acc):.3f}, GRU {np.mean(gru_acc):.3f}; "
          f"GRU with {args.k}/class vs the probe's all-label ceiling: {np.mean(gru_acc) - ceiling:+.3f}")


if __name__ == "__main__":
    main()
