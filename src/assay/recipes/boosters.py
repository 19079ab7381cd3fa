"""Early stopping on the validation split for LightGBM and XGBoost estimators, the way each library does it.

Both stop when the validation loss (their default metric for a classifier:
``binary_logloss``/``multi_logloss``, ``logloss``/``mlogloss``) has not
improved for ``early_stopping_rounds`` rounds, and both predict with the best
round afterwards, so ``predict_proba`` is the early-stopped model. The study
sets the patience in the estimator's ``params`` with one spelling for both,
``early_stopping_rounds = N`` (0 turns it off); unset, it is
``STOPPING_ROUNDS``:

* LightGBM 4 removed ``early_stopping_rounds`` from ``fit``: stopping is the
  ``lightgbm.early_stopping`` callback, passed to ``fit`` with the validation
  split; a patience in ``params`` (``early_stopping_round`` or one of its
  aliases) is turned into that same callback by LightGBM itself;
* XGBoost >= 2 takes ``early_stopping_rounds`` in the constructor and stops
  on the ``eval_set``.

The rounds kept, the rounds fitted, the cap and the validation curve are
recorded in the candidate's ``training``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import DataError

STOPPING_ROUNDS = 10  # rounds without a better validation loss before stopping (scikit-learn's n_iter_no_change for HGB)
_LIGHTGBM_PATIENCE = ("early_stopping_round", "early_stopping_rounds", "early_stopping", "n_iter_no_change")  # LightGBM's aliases
_BASES = {"lightgbm": "LGBMModel", "xgboost": "XGBModel"}


def library(model: Any) -> str | None:
    """``"lightgbm"`` or ``"xgboost"`` when ``model`` is one of their scikit-learn estimators, else ``None``.

    The class came from an imported module, so a library not yet imported cannot be the one.
    """
    for name, base in _BASES.items():
        module = sys.modules.get(name)
        if module is not None and isinstance(model, getattr(module, base)):
            return name
    return None


def check_xgboost_labels(y: np.ndarray, class_names: tuple[str, ...], where: str) -> None:
    """Refuse a training split XGBoost cannot fit: it needs its classes to be ``0..m-1``, so a class missing below the largest
    present one fails inside XGBoost with a message about inferred classes.

    Raises:
        DataError: naming the classes without training rows, and the fixes.
    """
    present = np.unique(y)
    if np.array_equal(present, np.arange(len(present))):
        return
    missing = [class_names[i] for i in range(int(present.max())) if i not in set(present.tolist())]
    raise DataError(f"{where}: XGBoost needs training rows of every class up to the last one it sees, and class"
                    f"{'es' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing[:5])} {'have' if len(missing) > 1 else 'has'} "
                    f"none in the training split; keep {'them' if len(missing) > 1 else 'it'} in training, or use a LightGBM or scikit-learn estimator")


def prepare(model: Any, name: str) -> list[Any]:
    """Set ``model`` up to stop on the eval set ``fit`` will get; the callbacks to pass to ``fit`` (LightGBM's)."""
    params = model.get_params()
    if name == "xgboost":
        if params.get("early_stopping_rounds") is None:
            model.set_params(early_stopping_rounds=STOPPING_ROUNDS)
        return []
    import lightgbm

    if params.get("verbose") is None and params.get("verbosity") is None:
        model.set_params(verbose=-1)  # its per-tree warnings ("no further splits") would flood the study's output
    if any(params.get(alias) is not None for alias in _LIGHTGBM_PATIENCE):
        return []  # LightGBM builds the same callback from the parameter; a second one would stop twice
    return [lightgbm.early_stopping(STOPPING_ROUNDS, verbose=False)]


def rounds_chosen(model: Any, name: str) -> dict[str, Any]:
    """What a fitted booster's early stopping did: the rounds kept and fitted, the cap, the validation curve it stopped on."""
    if name == "xgboost":
        curves = model.evals_result().get("validation_0", {})
        metric = list(curves)[-1] if curves else None  # XGBoost stops on the last metric
        patience = model.get_params().get("early_stopping_rounds") or 0
        best = getattr(model, "best_iteration", None) if patience else None  # 0-based; undefined without early stopping
        kept = None if best is None else best + 1
    else:
        curves = model.evals_result_.get("valid_0", {})
        metric = next(iter(curves), None)
        best = model.best_iteration_  # 1-based; 0 when nothing stopped it
        patience = next((model.get_params()[a] for a in _LIGHTGBM_PATIENCE if model.get_params().get(a) is not None), STOPPING_ROUNDS)
        kept = best or None
    curve = [round(float(v), 6) for v in curves.get(metric, [])]
    fitted = len(curve)
    if not patience:
        how = f"off ({name}: early_stopping_rounds = 0)"
    else:
        how = f"{name}: stops after {patience} rounds without a better validation {metric}"
    return {"early_stopping": how, "rounds": kept or fitted, "rounds_fitted": fitted, "max_rounds": model.get_params()["n_estimators"],
            "stopping_metric": metric, "val_loss_by_round": curve}
