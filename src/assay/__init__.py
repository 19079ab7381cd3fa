"""assay: which model should I ship for this task, and what is the evidence?

The public API loads lazily so that ``import assay`` and ``assay --help`` stay
fast and pull in no optional library::

    import assay
    task = assay.load_builtin("digits", seed=0)
    result = assay.Study.from_file("examples/digits.toml").run()
    result = assay.judge(my_model, assay.Task.from_arrays(x_train, y_train, x_test, y_test))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "Study": "assay.study",
    "StudyResult": "assay.study",
    "judge": "assay.bring_your_own",
    "load_study": "assay.spec",
    "Task": "assay.data.task",
    "Split": "assay.data.task",
    "load_builtin": "assay.data.builtin",
    "load_image_folder": "assay.data.sources",
    "load_table": "assay.data.sources",
    "load_npz": "assay.data.sources",
    "Candidate": "assay.models.candidate",
    "Evidence": "assay.checks.base",
    "Policy": "assay.select",
    "Decision": "assay.select",
    "Store": "assay.store",
    "AssayError": "assay.errors",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'assay' has no attribute '{name}'")
