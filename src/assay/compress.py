"""``assay compress MODEL --task TASK``: the compression study for a saved model.

It writes an ordinary study (kept in the run folder as the resolved study
file, so the run is reproducible with ``assay run``): the model is loaded as
the parent, every compression that applies to it becomes a variant, the
whole battery judges them, and the policy keeps only variants within
``max_drop`` accuracy of the parent, then prefers fast and small ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelError

STRUCTURED = ("cnn", "mlp")  # architectures channel pruning applies to
CHECKS = ("performance", "calibration", "comparison", "fairness", "robustness", "efficiency")


def compression_study(model: Path, task: str, *, max_drop: float = 0.01, seed: int = 0) -> str:
    """The study file's text for compressing ``model`` on ``task`` (a builtin name or a data path)."""
    model = Path(model).resolve()
    parent = model.stem
    arch, transforms = _describe(model)
    if transforms and transforms != ["onnx_fp32"]:
        raise ModelError(f"{model}: already compressed ({', '.join(transforms)}); compress its float parent instead")
    recipes = [{"name": parent, "kind": "load", "path": str(model)}]
    if arch == "onnx":
        recipes.append({"name": f"{parent}-ort-int8", "kind": "export", "parent": parent, "precision": "int8"})
    else:
        recipes += [
            {"name": f"{parent}-int8", "kind": "quantize", "parent": parent},
            {"name": f"{parent}-ort", "kind": "export", "parent": parent, "precision": "fp32"},
            {"name": f"{parent}-ort-int8", "kind": "export", "parent": parent, "precision": "static_int8" if arch == "cnn" else "int8"},
        ]
        if arch in STRUCTURED:
            recipes.append({"name": f"{parent}-pruned", "kind": "prune", "parent": parent, "method": "channels", "sparsity": 0.5})
    source = Path(task)
    task_line = f"path = {json.dumps(str(source.resolve()))}" if source.exists() else f"builtin = {json.dumps(task)}"
    lines = [
        f"name = {json.dumps('compress-' + _slug(parent))}",
        f"description = {json.dumps(f'Compress {model.name}: which variant keeps its accuracy within {max_drop} and is fastest and smallest?')}",
        f"seed = {seed}",
        "",
        "[task]",
        task_line,
    ]
    for recipe in recipes:
        lines += ["", "[[recipe]]", *(f"{k} = {json.dumps(v)}" for k, v in recipe.items())]
    lines += [
        "", "[checks]", f"run = {json.dumps(list(CHECKS))}",
        "", "[policy]", f"gates = {json.dumps([f'accuracy_drop <= {max_drop}'])}",
        'objectives = ["maximise accuracy", "minimise latency_p50_ms", "minimise size_mb"]', "",
    ]
    return "\n".join(lines)


def _describe(model: Path) -> tuple[str, list[str]]:
    """The architecture name and transforms of a saved model, read without loading it."""
    if model.suffix == ".onnx":
        if not model.is_file():
            raise ModelError(f"{model}: model file not found; give a .onnx file or a NAME.safetensors with its NAME.json")
        return "onnx", ["onnx_fp32"]
    meta = model.with_suffix(".json")
    if model.suffix not in (".safetensors", ".json"):
        raise ModelError(f"{model}: unknown model format '{model.suffix}'; give a NAME.safetensors (with its NAME.json) or a .onnx file")
    if not meta.is_file() or not model.with_suffix(".safetensors").is_file():
        raise ModelError(f"{model.with_suffix('')}: model not found (an assay model is NAME.safetensors with its NAME.json); check the path")
    try:
        data = json.loads(meta.read_text())
        return str(data["arch"]["name"]), list(data.get("transforms", []))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ModelError(f"{meta}: not an assay candidate description ({error}); save the candidate with assay") from None


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
