"""The ``sklearn`` recipe: the classic baseline a deep model must beat.

Study file::

    [[recipe]]
    name = "logreg"
    kind = "sklearn"
    estimator = "logistic_regression"

scikit-learn's L2-regularised logistic regression, fitted on the same rows and
encoded columns the networks get (the task's ``TablePipeline`` output, or any
flattened input), with the inverse regularisation strength ``C`` chosen by
log-loss on the validation split from a grid (or fixed by the study). The
fitted coefficients become an ``mlp`` with no hidden layer — ``Flatten`` then
``Linear`` — so the candidate is an ordinary PyTorch model: saved as
safetensors, differentiable for the gradient-based checks, exported and
quantized like any other. Its probabilities equal scikit-learn's
``predict_proba`` (tested to 1e-5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import SpecError
from ..models import zoo
from ..models.candidate import Candidate, Provenance
from .base import Recipe, RecipeContext, register_recipe

ESTIMATORS = ("logistic_regression",)
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
_ABSENT_LOGIT = -30.0  # a class missing from train gets a probability of about e^-30


@register_recipe
class Sklearn(Recipe):
    """A scikit-learn estimator as a candidate, fitted on the task's encoded inputs.

    Args:
        estimator: ``"logistic_regression"``.
        C: inverse regularisation strength; ``None`` picks it on validation
            log-loss from ``C_GRID``.
        max_iter: the solver's iteration limit.
    """

    kind = "sklearn"

    def __init__(self, *, estimator: str = "logistic_regression", C: float | None = None, max_iter: int = 2000) -> None:
        if estimator not in ESTIMATORS:
            from ..errors import did_you_mean

            raise ValueError(f"unknown estimator '{estimator}'{did_you_mean(estimator, ESTIMATORS)}; available: {', '.join(ESTIMATORS)}")
        if C is not None and not (math.isfinite(C) and C > 0):
            raise ValueError(f"'C' must be a positive finite number, got {C}")
        if max_iter < 1:
            raise ValueError(f"'max_iter' must be at least 1, got {max_iter}")
        self.estimator, self.C, self.max_iter = estimator, C, max_iter

    def make(self, name: str, context: RecipeContext) -> Candidate:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from threadpoolctl import threadpool_limits

        task = context.task
        if task.modality == "text":
            raise SpecError(f"[[recipe]] '{name}': kind = \"sklearn\" reads numeric inputs, and text is token ids; use kind = \"train\" or \"transfer\"")
        x, y = _flat(task.train.x), np.asarray(task.train.y)
        xv, yv = _flat(task.val.x), np.asarray(task.val.y)
        classes = np.arange(task.num_classes)
        started = time.perf_counter()
        scores: dict[str, float] = {}
        best = None
        with threadpool_limits(limits=1):  # BLAS threads beside torch's pool slow scikit-learn many-fold on a small machine
            for c in (self.C,) if self.C is not None else C_GRID:
                model = LogisticRegression(C=c, max_iter=self.max_iter, random_state=context.seed).fit(x, y)
                loss = log_loss(yv, _full_proba(model, xv, task.num_classes), labels=classes)
                scores[f"{c:g}"] = float(loss)
                if best is None or loss < best[0] - 1e-12:
                    best = (loss, c, model)
        _, c, model = best
        net = zoo.build("mlp", input_shape=task.input_shape, num_classes=task.num_classes, hidden=[], where=f"[[recipe]] '{name}'")
        weight, bias = _linear_head(model, x.shape[1], task.num_classes)
        with torch.no_grad():
            net.head.weight.copy_(torch.from_numpy(weight))
            net.head.bias.copy_(torch.from_numpy(bias))
        net.eval()
        arch = {"name": "mlp", "input_shape": list(task.input_shape), "num_classes": task.num_classes, "hidden": []}
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest())
        training = {"train_seconds": round(time.perf_counter() - started, 3), "C": c, "val_log_loss_by_C": scores,
                    "converged": bool(np.all(model.n_iter_ < self.max_iter)), "library": "scikit-learn LogisticRegression (lbfgs)"}
        return Candidate(name, net, provenance, training=training)


def _flat(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def _full_proba(model, x: np.ndarray, k: int) -> np.ndarray:
    """``predict_proba`` over all ``k`` classes (a class absent from train gets 0)."""
    out = np.zeros((len(x), k))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _linear_head(model, width: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(K, D)`` and bias ``(K,)`` whose softmax equals the model's ``predict_proba``.

    A binary model has one coefficient row, the log-odds of ``classes_[1]``:
    softmax over ``(0, z)`` is the sigmoid of ``z``.
    """
    weight = np.zeros((k, width), dtype=np.float32)
    bias = np.full(k, _ABSENT_LOGIT, dtype=np.float32)
    present: Sequence[int] = model.classes_
    if len(present) == 2:
        weight[present[1]], bias[present[1]] = model.coef_[0], model.intercept_[0]
        bias[present[0]] = 0.0
    else:
        weight[present], bias[present] = model.coef_, model.intercept_
    return weight, bias
