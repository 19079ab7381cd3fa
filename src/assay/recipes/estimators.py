"""Any scikit-learn-compatible estimator by import path, for the ``sklearn`` recipe.

``"sklearn.ensemble:RandomForestClassifier"`` names a class; it is imported
(never a file: an estimator comes from an installed package), built with the
study's ``params`` and validated before anything is fitted, and refused in
one line naming the recipe when the module or class is missing, it has no
``predict_proba``, or scikit-learn refuses a parameter (its own message).
"""

from __future__ import annotations

import importlib
import inspect
import re
import time
from typing import Any

import numpy as np

from ..errors import SpecError, did_you_mean
from . import boosters

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_path(text: object) -> bool:
    """Whether ``text`` is ``module:Class`` (rather than a named estimator)."""
    return isinstance(text, str) and bool(_PATH.match(text))


def estimator_class(path: str, where: str) -> type:
    """The class ``module:Class`` names.

    Raises:
        SpecError: the module is not installed, or has no such class.
    """
    module_name, name = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        top = module_name.split(".")[0]
        missing = getattr(error, "name", None) or module_name
        fix = f"install it (pip install {top})" if missing == top else "check the import path"
        raise SpecError(f"{where}: estimator '{path}': no module named '{missing}'; {fix}, e.g. estimator = \"sklearn.ensemble:RandomForestClassifier\"") from None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        classes = [n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_")]
        raise SpecError(f"{where}: estimator '{path}': {module_name} has no class '{name}'{did_you_mean(name, classes)}; give a classifier class")
    return found


def takes(path: str, parameter: str, where: str) -> bool:
    """Whether the class's constructor has ``parameter``."""
    return parameter in inspect.signature(estimator_class(path, where)).parameters


def build(path: str, params: dict[str, Any], *, seed: int, where: str) -> Any:
    """An unfitted estimator: ``Class(**params)``, ``random_state`` the study's seed unless ``params`` sets it, parameters validated.

    Raises:
        SpecError: the estimator's own first line for a bad parameter; no ``predict_proba``.
    """
    cls = estimator_class(path, where)
    params = dict(params)
    if "random_state" in inspect.signature(cls).parameters:
        params.setdefault("random_state", seed)
    try:
        model = cls(**params)
        if hasattr(model, "_parameter_constraints"):  # scikit-learn checks its own parameters at fit; check them now
            model._validate_params()
    except Exception as error:  # noqa: BLE001 -- each library raises its own types for a bad parameter
        raise SpecError(f"{where}: estimator '{path}' refused its params: {_first_line(error)}") from None
    if not callable(getattr(model, "predict_proba", None)):
        raise SpecError(f"{where}: estimator '{path}' has no predict_proba (not a classifier, or its probabilities are off, "
                        f"e.g. SVC needs params = {{ probability = true }}); give a classifier that gives probabilities")
    return model


def fit(model: Any, x: np.ndarray, y: np.ndarray, xv: np.ndarray | None, yv: np.ndarray | None, where: str,
        callbacks: list[Any] | None = None) -> None:
    """``model.fit(x, y)``, given the validation rows where its ``fit`` takes them; an error becomes one line.

    The rows go as ``eval_X``/``eval_y`` where ``fit`` has them (LightGBM >= 4.7 deprecates ``eval_set``
    for these), else as ``eval_set=[(xv, yv)]`` (XGBoost, older LightGBM); ``callbacks`` are LightGBM's.
    """
    accepted = inspect.signature(model.fit).parameters
    kwargs: dict[str, Any] = {}
    if xv is not None:
        if "eval_X" in accepted and "eval_y" in accepted:
            kwargs = {"eval_X": xv, "eval_y": yv}
        elif "eval_set" in accepted:
            kwargs = {"eval_set": [(xv, yv)]}
        if kwargs and "verbose" in accepted:
            kwargs["verbose"] = False
    if callbacks:
        kwargs["callbacks"] = callbacks
    try:
        model.fit(x, y, **kwargs)
    except Exception as error:  # noqa: BLE001 -- the estimator's own error
        raise SpecError(f"{where}: fitting {type(model).__name__} failed: {_first_line(error)}; change its params") from None


def staged_losses(model: Any, xv: np.ndarray, yv: np.ndarray, k: int) -> list[float]:
    """Validation log-loss after each boosting round (``staged_predict_proba``), over all ``k`` classes."""
    from sklearn.metrics import log_loss

    classes, labels = np.asarray(model.classes_), np.arange(k)
    losses = []
    for p in model.staged_predict_proba(xv):
        full = np.zeros((len(p), k))
        full[:, classes] = p
        losses.append(float(log_loss(yv, full, labels=labels)))
    return losses


def fit_black_box(model: Any, task, where: str) -> tuple[Any, dict[str, Any]]:
    """Fit an estimator on the task's encoded, flattened rows, with early stopping on validation where it has a hook.

    With ``staged_predict_proba`` and ``n_estimators`` the rounds are chosen on
    validation log-loss and the model refitted with that many (the first
    rounds of a seeded refit are the same); a LightGBM or XGBoost estimator
    stops on the validation split the way its library does it (``boosters.py``);
    any other ``fit`` that takes an eval set gets the validation split as it;
    otherwise the estimator is fitted as it is.

    Returns:
        The fitted model and what the candidate's ``training`` records (for a booster, the rounds chosen).
    """
    flat = lambda a: np.asarray(a, dtype=np.float64).reshape(len(a), -1)  # noqa: E731
    x, y, xv, yv = flat(task.train.x), np.asarray(task.train.y), flat(task.val.x), np.asarray(task.val.y)
    started = time.perf_counter()
    library = boosters.library(model)
    if library == "xgboost":
        boosters.check_xgboost_labels(y, task.class_names, where)
    callbacks = boosters.prepare(model, library) if library else None
    fit(model, x, y, xv, yv, where, callbacks)
    training: dict[str, Any] = {"early_stopping": "none"}
    if library:
        training = boosters.rounds_chosen(model, library)
    elif callable(getattr(model, "staged_predict_proba", None)) and "n_estimators" in model.get_params():
        losses = staged_losses(model, xv, yv, task.num_classes)
        rounds = int(np.argmin(losses)) + 1  # the first of equal losses: the smaller model
        training = {"early_stopping": "rounds chosen on validation log-loss", "rounds": rounds, "rounds_fitted": len(losses),
                    "val_log_loss_by_round": [round(v, 6) for v in losses]}
        if rounds < len(losses):
            model.set_params(n_estimators=rounds)
            fit(model, x, y, None, None, where)
    elif {"eval_set", "eval_X"} & set(inspect.signature(model.fit).parameters):
        training = {"early_stopping": "the validation split as eval_set (the estimator's own early-stopping parameter applies)"}
    training["fit_seconds"] = round(time.perf_counter() - started, 3)
    return model, training


def _first_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [""])[0][:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
