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
    arch, options, transforms = _describe(model)
    if transforms and transforms != ["onnx_fp32"]:
        raise ModelError(f"{model}: already compressed ({', '.join(transforms)}); compress its float parent instead")
    recipes = [{"name": parent, "kind": "load", "path": str(model)}]
    if arch == "onnx":  # the architecture is unknown: try both int8 forms (dynamic suits matmuls, static suits convolutions)
        recipes += [{"name": f"{parent}-ort-int8", "kind": "export", "parent": parent, "precision": "int8"},
                    {"name": f"{parent}-ort-static-int8", "kind": "export", "parent": parent, "precision": "static_int8"}]
    else:
        recipes += [
            {"name": f"{parent}-int8", "kind": "quantize", "parent": parent},
            {"name": f"{parent}-ort", "kind": "export", "parent": parent, "precision": "fp32"},
            {"name": f"{parent}-ort-int8", "kind": "export", "parent": parent, "precision": "static_int8" if arch == "cnn" else "int8"},
        ]
        if arch in STRUCTURED:
            recipes.append({"name": f"{parent}-pruned", "kind": "prune", "parent": parent, "method": "channels", "sparsity": 0.5})
        student = _student(arch, options)
        if student is not None:
            recipes.append({"name": f"{parent}-student", "kind": "distill", "parent": parent, **student})
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
        lines += ["", "[[recipe]]", *(f"{k} = {_toml(v)}" for k, v in recipe.items())]
    lines += [
        "", "[checks]", f"run = {json.dumps(list(CHECKS))}",
        "", "[policy]", f"gates = {json.dumps([f'accuracy_drop <= {max_drop}'])}",
        'objectives = ["maximise accuracy", "minimise latency_p50_ms", "minimise size_mb"]', "",
    ]
    return "\n".join(lines)


def _describe(model: Path) -> tuple[str, dict, list[str]]:
    """The architecture name, its options and the transforms of a saved model, read without loading it."""
    if model.suffix == ".onnx":
        if not model.is_file():
            raise ModelError(f"{model}: model file not found; give a .onnx file or a NAME.safetensors with its NAME.json")
        return "onnx", {}, ["onnx_fp32"]
    if model.suffix not in (".safetensors", ".json"):
        raise ModelError(f"{model}: unknown model format '{model.suffix}'; give a NAME.safetensors (with its NAME.json) or a .onnx file")
    if not model.with_suffix(".json").is_file() or not model.with_suffix(".safetensors").is_file():
        raise ModelError(f"{model.with_suffix('')}: model not found (an assay model is NAME.safetensors with its NAME.json); check the path")
    from .models.candidate import read_description

    _, provenance = read_description(model.with_suffix(".json"))
    arch = dict(provenance.arch)
    return str(arch.pop("name")), arch, list(provenance.transforms)


def _student(arch: str, options: dict) -> dict | None:
    """A smaller architecture to distil into: half the widths, or a small transformer for text encoders."""
    if arch == "cnn":
        channels = options.get("channels") or (32, 64, 128)
        return {"arch": "cnn", "arch_options": {"channels": [max(4, c // 2) for c in channels]}}
    if arch == "mlp":
        hidden = options.get("hidden") or (256, 128)
        return {"arch": "mlp", "arch_options": {"hidden": [max(4, h // 2) for h in hidden]}}
    reads_tokens = arch == "pretrained" or (arch in ("gru", "transformer") and options.get("vocab_size") is not None)
    if reads_tokens:
        return {"arch": "transformer", "arch_options": {"dim": 128, "depth": 2, "heads": 4}, "lr": 1e-3}
    return None


def _toml(value: object) -> str:
    """A TOML value (strings, numbers, lists and inline tables are all a study needs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
