"""Build a registered class from study-file options, checking every value first.

One hook at the boundary, as scikit-learn's ``_parameter_constraints`` does:
each value is checked against the type annotation of the parameter it feeds
(``bool`` is not ``int``; a ``float`` accepts an int but never inf or nan;
``list[int]`` wants a list of integers; ``X | None`` accepts either) and
against the range declared for that parameter's name (``epochs >= 1``,
``lr > 0``, ``dropout`` in ``[0, 1)`` ...). A class may declare its own ranges
in a ``limits`` class attribute; the shared table below covers the names every
recipe, check, architecture and loader uses the same way. Errors are one
line naming the key, the value and the fix::

    study.toml [[recipe]] 'mlp': 'epochs' must be an integer, got 2.5; e.g. epochs = 60
"""

from __future__ import annotations

import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

from .errors import SpecError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Limit:
    """A closed or half-open numeric range; for a list, each entry's range."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""  # said after the range, e.g. a cap's reason

    def holds(self, x: float) -> bool:
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return not (self.high is not None and (x >= self.high if self.high_open else x > self.high))

    def __str__(self) -> str:
        if self.high is None:
            return "positive" if self.low_open and self.low == 0 else f"{'above' if self.low_open else 'at least'} {_fmt(self.low)}"
        if self.low is None:
            return f"{'below' if self.high_open else 'at most'} {_fmt(self.high)}"
        return f"in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}"


def at_least(low: float, why: str = "") -> Limit:
    return Limit(low=low, why=why)


def above(low: float) -> Limit:
    return Limit(low=low, low_open=True)


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False, why: str = "") -> Limit:
    return Limit(low, high, low_open, high_open, why)


# Ranges by parameter name, shared by every recipe, check, architecture and
# loader: a name means the same thing wherever it appears.
LIMITS: dict[str, Limit] = {
    **dict.fromkeys(
        ("epochs", "pretrain_epochs", "head_epochs", "batch_size", "patience", "steps", "repeats",
         "batch_repeats", "k", "min_group_size", "min_size", "n_clusters", "top", "pairs_per_example",
         "calibration_examples", "lora_rank", "lora_alpha", "kernel_size", "hidden", "channels", "dim", "depth",
         "heads", "mlp_ratio", "patch", "proj", "max_length", "vocab_size", "num_samples", "embed_dim", "layers"),
        at_least(1),
    ),
    "n_bins": at_least(2),
    **dict.fromkeys(("warmup_epochs", "warmup", "weight_decay", "grid_g_per_kwh", "epochs_per_step"), at_least(0)),
    **dict.fromkeys(("lr", "head_lr", "temperature", "scale", "harm_multiple", "strength"), above(0)),
    **dict.fromkeys(("label_smoothing", "dropout", "lora_dropout", "sparsity"), between(0, 1, high_open=True)),
    "alpha": between(0, 1),
    "layer_decay": between(0, 1, low_open=True),
    "val_fraction": between(0, 1, low_open=True, high_open=True),
    "fractions": between(0, 1),
    "severities": between(1, 5),
    "size": between(1, 65_535, why="image sides are counted in pixels"),
    "seed": between(0, 2**32 - 1, why="seeds are 32-bit"),
    "n_boot": between(100, 100_000, why="more resamples move a 95% interval's bounds by less than its rounding and cost minutes"),
}


def option_names(cls: type) -> list[str]:
    """The keyword parameters of ``cls.__init__``."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def construct(cls: type[T], options: Mapping[str, Any], where: str) -> T:
    """``cls(**options)``, turning unknown keys and bad values into SpecError.

    Every value is checked against the constructor's annotations and the
    declared ranges before the constructor runs (``check_options``).

    Args:
        where: the place in the study file, e.g. ``study.toml [[recipe]] 'cnn'``.
    """
    check_options(cls.__init__, options, where, limits=getattr(cls, "limits", None), skip=("self",))
    try:
        return cls(**options)
    except (TypeError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpecError(f"{where}: {message}") from None


def check_options(
    fn: Callable[..., Any],
    options: Mapping[str, Any],
    where: str,
    *,
    limits: Mapping[str, Limit] | None = None,
    skip: Sequence[str] = (),
    what: str = "key",
) -> None:
    """Check ``options`` against ``fn``'s keyword parameters: names, types and ranges.

    Args:
        fn: a function or ``__init__`` whose annotations say what each option must be.
        limits: ranges for this function's parameters, over the shared ``LIMITS``.
        skip: parameters the caller fills itself (``self``, ``seed`` ...), not options.
        what: how an option is named in messages (``key``, ``option``).

    Raises:
        SpecError: ``where: 'key' must be <kind>, got <value>; e.g. key = <default>``.
    """
    signature = inspect.signature(fn)
    params = {n: p for n, p in signature.parameters.items()
              if n not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    for key in options:
        if key not in params:
            allowed = list(params)
            hint = did_you_mean(key, allowed) or (f"; allowed: {', '.join(allowed)}" if allowed else "; it takes no options")
            raise SpecError(f"{where}: unknown {what} '{key}'{hint}")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 -- an annotation that cannot be evaluated is simply not checked
        hints = {}
    for key, value in options.items():
        default = params[key].default
        hint = hints.get(key, Any)
        example = _example(key, value, default, hint)
        if not conforms(value, hint):
            kind = describe(hint)
            if _non_finite(value) and conforms(0.0, hint):
                kind = kind.replace("a number", "a finite number").replace("numbers", "finite numbers")
            raise SpecError(f"{where}: '{key}' must be {kind}, got {toml_text(value)}{example}")
        limit = (limits or {}).get(key) or LIMITS.get(key)
        if limit is not None:
            check_limit(key, value, limit, where, example)


# Examples for options whose default says nothing (None, an empty list).
EXAMPLES = {
    "size": "[32, 32]", "groups": '["<column>"]', "meta": '["<column>"]', "features": '["<column>", ...]', "grayscale": "true",
    "class_names": '["cat", "dog"]', "arch_options": "{ hidden = [256, 128] }", "label": '"<column>"', "split_column": '"<column>"',
}


def _example(key: str, value: Any, default: Any, hint: Any) -> str:
    if not isinstance(value, (list, tuple)) and conforms([value], hint) and value is not None:
        return f"; write {key} = [{toml_text(value)}]"  # a list was meant
    if key in EXAMPLES:
        return f"; e.g. {key} = {EXAMPLES[key]}"
    if default is inspect.Parameter.empty or default is None or (isinstance(default, (tuple, list)) and not default):
        return ""
    return f"; e.g. {key} = {toml_text(default)}"


def check_limit(key: str, value: Any, limit: Limit, where: str, example: str = "") -> None:
    """Raise SpecError when a number (or any number in a list) is outside ``limit``."""
    numbers = value if isinstance(value, (list, tuple)) else [value]
    flat = [n for n in _flatten(numbers) if isinstance(n, (int, float)) and not isinstance(n, bool)]
    bad = [n for n in flat if not (isinstance(n, float) and math.isnan(n)) and not limit.holds(n)]
    if bad:
        subject = f"'{key}' entries" if isinstance(value, (list, tuple)) else f"'{key}'"
        why = f" ({limit.why})" if limit.why else ""
        raise SpecError(f"{where}: {subject} must be {limit}{why}, got {toml_text(value)}{example}")


def _flatten(values: Any) -> list[Any]:
    out = []
    for v in values:
        out.extend(_flatten(v) if isinstance(v, (list, tuple)) else [v])
    return out


def _non_finite(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return isinstance(value, float) and not math.isfinite(value)


def conforms(value: Any, hint: Any) -> bool:
    """Whether a study-file value fits a type annotation (TOML lists stand for tuples)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, (str, Path))
    if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length, e.g. tuple[int, int]
        return isinstance(value, (list, tuple)) and len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args))
    if origin in (list, tuple) or origin in (Sequence, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        inner = args[0] if args else Any
        return all(conforms(v, inner) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this checker does not model


def describe(hint: Any) -> str:
    """A type annotation in words, for an error message."""
    if hint is None or hint is type(None):
        return "absent"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        words = [describe(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(words))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(toml_text, args))
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint in (str, Path):
        return "a string"
    if origin is tuple and args and args[-1] is not Ellipsis:
        kinds = dict.fromkeys(_plural(a) for a in args)
        return f"a list of {len(args)} {' or '.join(kinds)}"
    if origin in (list, tuple, Sequence, typing.Sequence) or hint in (list, tuple):
        inner = args[0] if args else Any
        if typing.get_origin(inner) in (list, tuple, Sequence, typing.Sequence):
            return "a list of lists"
        return f"a list of {_plural(inner)}" if inner is not Any else "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a table"
    return getattr(hint, "__name__", str(hint))


def _plural(hint: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, describe(hint))


def toml_text(value: Any) -> str:
    """A value as the user wrote it in TOML (``true``, ``inf``, ``"2"``, ``[0, 0]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {toml_text(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _fmt(x: float | None) -> str:
    return "" if x is None else (f"{x:g}" if isinstance(x, float) else f"{x:,}".replace(",", "_") if abs(x) >= 10_000 else str(x))


# An option that names code (a zoo name, ``"models.py:make_net"``, ``"package.module:make_net"``): a ``str``
# to every check, and the mark ``resolve_paths`` reads to join only a ``.py`` file to the study's folder.
CODE = "code reference"
CodeRef = Annotated[str, CODE]
DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def code_ref(text: object) -> tuple[str, str] | None:
    """``(where, NAME)`` when ``text`` reads as ``FILE.py:NAME`` or ``package.module:NAME``, else ``None``.

    ``where`` is everything before the last colon (a file path may hold a folder), ``NAME`` a
    dotted Python name; a zoo name (``"mlp"``) or a Windows drive (``"C:\\data"``) is not a reference.
    """
    if not isinstance(text, str) or ":" not in text:
        return None
    where, name = text.rsplit(":", 1)
    return (where, name) if where and DOTTED_NAME.match(name) else None


def resolve_paths(fn: Callable[..., Any], options: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """The options that name a file, joined to ``base_dir`` (the study file's folder) when relative.

    Which options may name a file is read from ``fn``'s annotations: a ``Path``
    option names a file; a ``CodeRef`` option names code, and only its file is
    joined. In either, a value that reads as a code reference (``code_ref``) is
    one: ``"models.py:make_net"`` becomes ``"<base_dir>/models.py:make_net"``,
    while ``"package.module:make_net"`` and a plain name (a zoo architecture,
    ``"mlp"``) stay as they are.
    """
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001
        return dict(options)
    out = dict(options)
    for key, value in options.items():
        kind = _names_file(hints.get(key))
        if isinstance(value, str) and kind is not None:
            out[key] = _resolved(value, base_dir, kind == "file")
    return out


def _names_file(hint: Any) -> str | None:
    """``"file"`` for a ``Path`` annotation, ``"code"`` for a ``CodeRef``, looking inside ``X | None``; else ``None``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        kinds = [_names_file(a) for a in typing.get_args(hint)]
        return next((k for k in kinds if k is not None), None)
    if typing.get_origin(hint) is Annotated and CODE in hint.__metadata__:
        return "code"
    return "file" if hint is Path else None


def _resolved(value: str, base_dir: Path, is_file: bool) -> str:
    ref = code_ref(value)
    if ref is not None:
        where, name = ref
        return f"{_joined(where, base_dir)}:{name}" if where.endswith(".py") else value
    return _joined(value, base_dir) if is_file else value


def _joined(path: str, base_dir: Path) -> str:
    return path if Path(path).is_absolute() else str(Path(base_dir) / path)
