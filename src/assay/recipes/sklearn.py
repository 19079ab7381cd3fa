"""The ``sklearn`` recipe: the classic baselines a deep model must beat, and any scikit-learn-compatible estimator.

Study file::

    [[recipe]]
    name = "logreg"
    kind = "sklearn"
    estimator = "logistic_regression"     # or "gradient_boosting"

    [[recipe]]
    name = "hgb"
    kind = "sklearn"
    estimator = "sklearn.ensemble:HistGradientBoostingClassifier"   # any importable class, "module:Class"
    params = { max_iter = 300 }                                      # its constructor's parameters

Every estimator is fitted on the same rows and encoded columns the networks
get (the task's ``TablePipeline`` output, or any flattened input). The two
named ones have their one capacity setting chosen on the validation split by
log-loss, and become ordinary PyTorch candidates — saved as safetensors, run
on any device, read by every check:

* ``logistic_regression``: L2-regularised, ``C`` chosen from ``C_GRID`` (or
  fixed by the study). The coefficients become an ``mlp`` with no hidden
  layer, differentiable for the gradient-based checks;
* ``gradient_boosting``: ``HistGradientBoostingClassifier`` with up to
  ``max_iter`` boosting rounds, the number kept chosen on validation
  log-loss (scikit-learn's own early stopping would hold out part of train).
  The trees become a ``trees`` model (``models/trees.py``), piecewise
  constant, so its input gradients are zero.

An estimator by import path (``estimators.py`` imports it; a missing
package, class or ``predict_proba`` is refused before anything trains, and a
bad parameter with the estimator's own message):

* ``HistGradientBoostingClassifier`` and ``LogisticRegression`` become the
  same tensors as above, with the study's ``params`` (HGB: ``early_stopping``
  off unless ``params`` set it, and the rounds kept chosen on validation
  log-loss, so ``params = { max_iter = 200 }`` equals ``gradient_boosting``);
* any other estimator stays a black box behind ``predict_proba``
  (``models/skops_model.py``: no gradients, no features; saved as skops bytes
  inside the candidate's safetensors, so a run resumes it). Early stopping on
  the validation split where the estimator offers a hook: with
  ``staged_predict_proba`` and ``n_estimators`` (scikit-learn's
  ``GradientBoostingClassifier``, ``AdaBoostClassifier``) the number of
  rounds is chosen on validation log-loss and the model refitted with it;
  LightGBM and XGBoost estimators stop on the validation split the way their
  library does it (``boosters.py``: LightGBM 4's ``early_stopping`` callback,
  XGBoost's ``early_stopping_rounds``; ``params = { early_stopping_rounds = N }``
  sets the patience for both, default 10, 0 turns it off), and the rounds
  kept are recorded in the candidate's ``training``; any other ``fit`` that
  takes an ``eval_set`` gets the validation split as it, and the estimator's
  own early-stopping parameter applies; otherwise it is fitted as it is.

Probabilities equal scikit-learn's ``predict_proba`` (tested to 1e-5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import SpecError
from ..models import zoo
from ..models.candidate import Candidate, Provenance
from ..models.trees import below_float32
from . import estimators
from .base import Recipe, RecipeContext, register_recipe

ESTIMATORS = ("logistic_regression", "gradient_boosting")
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
DEFAULT_MAX_ITER = {"logistic_regression": 2000, "gradient_boosting": 200}
_ABSENT_LOGIT = -30.0  # a class missing from train gets a probability of about e^-30


@register_recipe
class Sklearn(Recipe):
    """A scikit-learn estimator as a candidate, fitted on the task's encoded inputs.

    Args:
        estimator: ``"logistic_regression"``, ``"gradient_boosting"``, or an
            estimator class by import path, ``"module:Class"``.
        params: the path estimator's constructor parameters.
        C: logistic regression's inverse regularisation strength; ``None``
            picks it on validation log-loss from ``C_GRID``.
        max_iter: the solver's iteration limit (logistic regression, default
            2000) or the most boosting rounds (gradient boosting, default 200).
        learning_rate: gradient boosting's shrinkage.
        max_leaf_nodes: gradient boosting's leaves per tree.
    """

    kind = "sklearn"

    def __init__(self, *, estimator: str = "logistic_regression", params: dict[str, Any] | None = None, C: float | None = None,
                 max_iter: int | None = None, learning_rate: float = 0.1, max_leaf_nodes: int = 31) -> None:
        if estimators.is_path(estimator):
            named = {k: v for k, v in (("C", C), ("max_iter", max_iter)) if v is not None}
            named |= {k: v for k, v, d in (("learning_rate", learning_rate, 0.1), ("max_leaf_nodes", max_leaf_nodes, 31)) if v != d}
            if named:
                key = next(iter(named))
                raise ValueError(f"'{key}' applies to the named estimators; for '{estimator}' write params = {{ {key} = {named[key]} }}")
        elif params is not None:
            raise ValueError(f"'params' applies to an estimator given by import path (e.g. \"sklearn.ensemble:RandomForestClassifier\"), not to '{estimator}'")
        elif estimator not in ESTIMATORS:
            from ..errors import did_you_mean

            raise ValueError(f"unknown estimator '{estimator}'{did_you_mean(estimator, ESTIMATORS)}; available: {', '.join(ESTIMATORS)}, "
                             f"or a class by import path, e.g. \"sklearn.ensemble:RandomForestClassifier\"")
        if C is not None and not (math.isfinite(C) and C > 0):
            raise ValueError(f"'C' must be a positive finite number, got {C}")
        if C is not None and estimator != "logistic_regression":
            raise ValueError(f"'C' applies to estimator = \"logistic_regression\" only; remove it for '{estimator}'")
        if max_iter is not None and max_iter < 1:
            raise ValueError(f"'max_iter' must be at least 1, got {max_iter}")
        if not (math.isfinite(learning_rate) and 0 < learning_rate <= 1):
            raise ValueError(f"'learning_rate' must be in (0, 1], got {learning_rate}")
        if max_leaf_nodes < 2:
            raise ValueError(f"'max_leaf_nodes' must be at least 2, got {max_leaf_nodes}")
        self.estimator, self.params_, self.C, self.max_iter = estimator, params, C, max_iter
        self.learning_rate, self.max_leaf_nodes = learning_rate, max_leaf_nodes

    def params(self) -> dict[str, Any]:
        return {**super().params(), "params": self.params_}  # the option 'params' would shadow Recipe.params()

    def check_task(self, task, where: str) -> None:
        """Text is refused; an estimator by path is imported and built with its ``params`` (nothing is fitted)."""
        _numeric(task, where)
        if estimators.is_path(self.estimator):
            estimators.build(self.estimator, self.params_ or {}, seed=0, where=where)

    def make(self, name: str, context: RecipeContext) -> Candidate:
        from threadpoolctl import threadpool_limits

        task = context.task
        where = f"[[recipe]] '{name}'"
        _numeric(task, where)
        started = time.perf_counter()
        with threadpool_limits(limits=1):  # BLAS and OpenMP threads beside torch's pool slow scikit-learn many-fold on a small machine
            if estimators.is_path(self.estimator):
                net, arch, training = self._by_path(name, context, where)
            elif self.estimator == "logistic_regression":
                net, arch, training = self._logistic(name, context)
            else:
                net, arch, training = self._boosting(name, context)
        net.eval()
        arch = {"input_shape": list(task.input_shape), "num_classes": task.num_classes, **arch}
        provenance = Provenance(recipe=self.kind, arch=arch, config=self.params(), seed=context.seed, data_hash=task.digest())
        return Candidate(name, net, provenance, training={"train_seconds": round(time.perf_counter() - started, 3), **training})

    def _logistic(self, name: str, context: RecipeContext):
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        task = context.task
        x, y, xv, yv = _flat(task.train.x), np.asarray(task.train.y), _flat(task.val.x), np.asarray(task.val.y)
        max_iter = self.max_iter or DEFAULT_MAX_ITER[self.estimator]
        scores: dict[str, float] = {}
        best = None
        for c in (self.C,) if self.C is not None else C_GRID:
            model = LogisticRegression(C=c, max_iter=max_iter, random_state=context.seed).fit(x, y)
            loss = log_loss(yv, _full_proba(model.predict_proba(xv), model.classes_, task.num_classes), labels=np.arange(task.num_classes))
            scores[f"{c:g}"] = float(loss)
            if best is None or loss < best[0] - 1e-12:
                best = (loss, c, model)
        _, c, model = best
        net = zoo.build("mlp", input_shape=task.input_shape, num_classes=task.num_classes, hidden=[], where=f"[[recipe]] '{name}'")
        weight, bias = _linear_head(model, x.shape[1], task.num_classes)
        with torch.no_grad():
            net.head.weight.copy_(torch.from_numpy(weight))
            net.head.bias.copy_(torch.from_numpy(bias))
        training = {"C": c, "val_log_loss_by_C": scores, "converged": bool(np.all(model.n_iter_ < max_iter)),
                    "library": "scikit-learn LogisticRegression (lbfgs)"}
        return net, {"name": "mlp", "hidden": []}, training

    def _boosting(self, name: str, context: RecipeContext, model=None):
        """Histogram gradient boosting (``model``: one built from the study's ``params``), rounds kept chosen on validation log-loss."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        task = context.task
        x, y, xv, yv = _flat(task.train.x), np.asarray(task.train.y), _flat(task.val.x), np.asarray(task.val.y)
        if model is None:
            model = HistGradientBoostingClassifier(max_iter=self.max_iter or DEFAULT_MAX_ITER["gradient_boosting"], learning_rate=self.learning_rate,
                                                   max_leaf_nodes=self.max_leaf_nodes, early_stopping=False, random_state=context.seed)
        model.fit(x, y)
        losses = estimators.staged_losses(model, xv, yv, task.num_classes)
        rounds = int(np.argmin(losses)) + 1  # the first of equal losses: the smaller model
        net, arch = tree_candidate(model, rounds, task.input_shape, task.num_classes)
        training = {"rounds": rounds, "rounds_fitted": len(losses), "val_log_loss_by_round": [round(v, 6) for v in losses],
                    "library": "scikit-learn HistGradientBoostingClassifier"}
        return net, arch, training

    def _by_path(self, name: str, context: RecipeContext, where: str):
        """An estimator by import path: HGB and logistic regression as tensors, anything else a black box saved with skops."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression

        from ..models.skops_model import ARCH, SkopsClassifier, dump

        task = context.task
        own = dict(self.params_ or {})
        if "early_stopping" not in own and estimators.takes(self.estimator, "early_stopping", where):
            own["early_stopping"] = False  # HGB's own would hold out part of train; the rounds are chosen on validation instead
        model = estimators.build(self.estimator, own, seed=context.seed, where=where)
        if isinstance(model, HistGradientBoostingClassifier):
            net, arch, training = self._boosting(name, context, model)
        elif isinstance(model, LogisticRegression):
            x, y = _flat(task.train.x), np.asarray(task.train.y)
            estimators.fit(model, x, y, None, None, where)
            net = zoo.build("mlp", input_shape=task.input_shape, num_classes=task.num_classes, hidden=[], where=where)
            weight, bias = _linear_head(model, x.shape[1], task.num_classes)
            with torch.no_grad():
                net.head.weight.copy_(torch.from_numpy(weight))
                net.head.bias.copy_(torch.from_numpy(bias))
            arch, training = {"name": "mlp", "hidden": []}, {"library": "scikit-learn LogisticRegression"}
        else:
            model, training = estimators.fit_black_box(model, task, where)
            blob, trusted = dump(model)
            qualified = f"{type(model).__module__}.{type(model).__qualname__}"
            net = SkopsClassifier(model, blob, task.num_classes, name)
            arch = {"name": ARCH, "class": qualified, "trusted": trusted}
            training = {**training, "library": qualified}
        return net, arch, {**training, "estimator": self.estimator}


def tree_candidate(model, rounds: int, input_shape: Sequence[int], num_classes: int):
    """The first ``rounds`` boosting rounds of a fitted ``HistGradientBoostingClassifier`` as a ``trees`` model, and its arch.

    Reads the fitted trees' node arrays (``_predictors``, ``_baseline_prediction``: scikit-learn's
    private layout, which the recipe's test checks against ``predict_proba``).
    """
    trees = [tree for iteration in model._predictors[:rounds] for tree in iteration]
    if any(tree.nodes["is_categorical"].any() for tree in trees):
        raise SpecError("gradient_boosting: categorical splits are not supported; give the model one-hot encoded columns")
    per_round = len(model._predictors[0])  # 1 for two classes (the log-odds of classes_[1]), else one tree per class
    width, depth = max(len(t.nodes) for t in trees), int(max(t.nodes["depth"].max() for t in trees))
    arch = {"name": "trees", "n_trees": len(trees), "n_nodes": width, "depth": depth}
    net = zoo.build("trees", input_shape=input_shape, num_classes=num_classes, **{k: v for k, v in arch.items() if k != "name"})
    body = net.body
    with torch.no_grad():
        for i, tree in enumerate(trees):
            nodes, m = tree.nodes, len(tree.nodes)
            own = np.arange(m)
            leaf = nodes["is_leaf"].astype(bool)
            body.feature[i, :m] = torch.from_numpy(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64))
            body.threshold[i, :m] = torch.from_numpy(below_float32(nodes["num_threshold"]))
            body.left[i, :m] = torch.from_numpy(np.where(leaf, own, nodes["left"]).astype(np.int64))  # a leaf points to itself
            body.right[i, :m] = torch.from_numpy(np.where(leaf, own, nodes["right"]).astype(np.int64))
            body.value[i, :m] = torch.from_numpy(nodes["value"].astype(np.float32))
            body.missing_left[i, :m] = torch.from_numpy(nodes["missing_go_to_left"].astype(bool))
        weight = torch.zeros(num_classes, len(trees))
        bias = torch.full((num_classes,), _ABSENT_LOGIT)
        classes, baseline = model.classes_, np.asarray(model._baseline_prediction).ravel()
        if per_round == 1:
            bias[classes[0]], bias[classes[1]] = 0.0, float(baseline[0])
            weight[classes[1]] = 1.0
        else:
            for j, k in enumerate(classes):
                bias[k] = float(baseline[j])
                weight[k, j::per_round] = 1.0
        net.head.weight.copy_(weight)
        net.head.bias.copy_(bias)
    return net, arch


def _numeric(task, where: str) -> None:
    if task.modality == "text":
        raise SpecError(f"{where}: kind = \"sklearn\" reads numeric inputs, and text is token ids; use kind = \"train\" or \"transfer\"")


def _flat(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def _full_proba(proba: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    """``predict_proba``'s columns (for ``classes``) spread over all ``k`` classes (a class absent from train gets 0)."""
    out = np.zeros((len(proba), k))
    out[:, classes] = proba
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
