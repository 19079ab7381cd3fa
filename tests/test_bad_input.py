"""The bad-input corpus: every input a user can get wrong is refused before anything trains.

Each case builds a bad study file, data file, model file or command line in a
fresh folder, runs ``assay.cli.main`` on it and asserts the promise of
``docs/architecture.md``: exit status 2, exactly one line on stderr that names
the input and says the fix, no traceback, and no run folder written. Cases are
refused from the study file, the data's headers or a memory estimate, so each
takes milliseconds; nothing trains.

A case is ``(id, files, argv, expected)``: ``files`` maps a relative path to
its content (text, bytes, or a function of the folder that writes it), ``argv``
is the command line with ``{dir}`` for the folder, and every string of
``expected`` must appear in the error line.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from assay.cli import main

# --- building blocks ------------------------------------------------------------

RECIPE = 'name = "mlp"\nkind = "train"\narch = "mlp"\nepochs = 1'


def study(task: str = 'builtin = "digits"', recipe: str = RECIPE, checks: str = 'run = ["performance"]\nn_boot = 100',
          policy: str = "", top: str = "", extra: str = "") -> str:
    """A small valid study with one part replaced."""
    return (f'name = "bad"\n{top}\n[task]\n{task}\n\n[[recipe]]\n{recipe}\n\n{extra}\n[checks]\n{checks}\n'
            + (f"\n[policy]\n{policy}\n" if policy else ""))


def recipe(**options: str) -> str:
    """The default recipe with options added or replaced (values as TOML text)."""
    base = {"name": '"mlp"', "kind": '"train"', "arch": '"mlp"', "epochs": "1"}
    base.update(options)
    return "\n".join(f"{k} = {v}" for k, v in base.items() if v is not None)


def table(folder: Path, name: str = "loans.csv", rows: int = 200, **columns) -> None:
    """A loan table: 12 numeric features, a group column 'race', the label 'approved' (no/yes)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"f{i:02d}": rng.normal(size=rows) for i in range(12)})
    frame["race"] = rng.choice(["a", "b"], rows)
    frame["approved"] = np.where(rng.random(rows) < 0.5, "no", "yes")
    for key, values in columns.items():
        frame[key] = values(rows) if callable(values) else values
    frame.to_csv(folder / name, index=False)


def images(folder: Path, n: int = 24, classes: int = 2, size=(8, 8)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        d = folder / "images" / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(d / f"{i:03d}.png")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels and holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def npz(folder: Path, name: str = "arrays.npz", **arrays) -> None:
    np.savez(folder / name, **arrays)


def _xy(n: int = 60, d: int = 4):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)).astype(np.float32), np.arange(n) % 3


def saved_model(folder: Path, name: str = "model", **arch) -> None:
    """An (untrained) assay candidate for digits, saved as model.safetensors + model.json."""
    import torch

    from assay.models import zoo
    from assay.models.candidate import Candidate, Provenance

    torch.manual_seed(0)
    options = {"hidden": [8], **arch}
    model = zoo.build("mlp", input_shape=(1, 8, 8), num_classes=10, **options)
    prov = Provenance(recipe="train", arch={"name": "mlp", "input_shape": [1, 8, 8], "num_classes": 10, **options},
                      config={}, seed=0, data_hash="0" * 64)
    Candidate(name, model, prov).save(folder / "models")


def edit_json(change):
    """Save a model, then rewrite its JSON description with ``change(meta)``."""
    def write(folder: Path) -> None:
        saved_model(folder)
        path = folder / "models" / "model.json"
        meta = json.loads(path.read_text())
        out = change(meta)
        path.write_text(out if isinstance(out, str) else json.dumps(meta))
    return write


def edit_weights(folder: Path) -> None:
    """A valid safetensors file whose weights were changed after saving."""
    from safetensors.torch import load_file, save_file

    saved_model(folder)
    path = folder / "models" / "model.safetensors"
    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key] + 1
    save_file(tensors, str(path))


LOAD = 'name = "mine"\nkind = "load"\npath = "models/model.safetensors"'
RUN = ["run", "{dir}/study.toml", "--out", "{dir}/runs"]
TABLE = 'path = "loans.csv"\nlabel = "approved"'
IMAGES = 'path = "images"'
NPZ = 'path = "arrays.npz"'


def with_table(**columns):
    return lambda folder: table(folder, **columns)


# --- the corpus -------------------------------------------------------------------

CASES = [
    # study values checked against the signatures they feed
    ("epochs-true", {"study.toml": study(recipe=recipe(epochs="true"))}, RUN, ("'epochs' must be an integer, got true", "e.g. epochs = 60")),
    ("epochs-float", {"study.toml": study(recipe=recipe(epochs="2.5"))}, RUN, ("'epochs' must be an integer, got 2.5",)),
    ("epochs-string", {"study.toml": study(recipe=recipe(epochs='"2"'))}, RUN, ("'epochs' must be an integer, got \"2\"",)),
    ("epochs-zero", {"study.toml": study(recipe=recipe(epochs="0"))}, RUN, ("'epochs' must be at least 1, got 0",)),
    ("warmup-negative", {"study.toml": study(recipe=recipe(warmup_epochs="-5"))}, RUN, ("'warmup_epochs' must be at least 0, got -5",)),
    ("hidden-zero", {"study.toml": study(recipe=recipe(arch_options="{ hidden = [0] }"))}, RUN, ("'hidden' entries must be at least 1, got [0]", "e.g. hidden = [256, 128]")),
    ("hidden-string", {"study.toml": study(recipe=recipe(arch_options='{ hidden = "256" }'))}, RUN, ("'hidden' must be a list of integers",)),
    ("hidden-huge", {"study.toml": study(recipe=recipe(arch_options="{ hidden = [100000, 100000, 100000] }"))}, RUN, ("needs about", "GB", "make the model or the inputs smaller")),
    ("dropout-range", {"study.toml": study(recipe=recipe(arch_options="{ dropout = 1.5 }"))}, RUN, ("'dropout' must be in [0, 1), got 1.5",)),
    ("channels-zero", {"study.toml": study(recipe=recipe(arch='"cnn"', arch_options="{ channels = [16, 0] }"))}, RUN, ("'channels' entries must be at least 1",)),
    ("kernel-float", {"study.toml": study(recipe=recipe(arch='"cnn"', arch_options="{ kernel_size = 2.5 }"))}, RUN, ("'kernel_size' must be an integer, got 2.5",)),
    ("arch-options-string", {"study.toml": study(recipe=recipe(arch_options='"big"'))}, RUN, ("'arch_options' must be a table",)),
    ("arch-option-unknown", {"study.toml": study(recipe=recipe(arch_options="{ hiden = [64] }"))}, RUN, ("unknown option 'hiden'", "did you mean 'hidden'")),
    ("arch-unknown", {"study.toml": study(recipe=recipe(arch='"resnet9"'))}, RUN, ("unknown architecture 'resnet9'", "available:")),
    ("lr-inf", {"study.toml": study(recipe=recipe(lr="inf"))}, RUN, ("'lr' must be a finite number, got inf", "e.g. lr = 0.003")),
    ("lr-nan", {"study.toml": study(recipe=recipe(lr="nan"))}, RUN, ("'lr' must be a finite number, got nan",)),
    ("lr-negative-inf", {"study.toml": study(recipe=recipe(lr="-inf"))}, RUN, ("'lr' must be a finite number, got -inf",)),
    ("lr-zero", {"study.toml": study(recipe=recipe(lr="0.0"))}, RUN, ("'lr' must be positive, got 0.0",)),
    ("weight-decay-negative", {"study.toml": study(recipe=recipe(weight_decay="-0.1"))}, RUN, ("'weight_decay' must be at least 0, got -0.1",)),
    ("batch-size-zero", {"study.toml": study(recipe=recipe(batch_size="0"))}, RUN, ("'batch_size' must be at least 1, got 0",)),
    ("patience-bool", {"study.toml": study(recipe=recipe(patience="false"))}, RUN, ("'patience' must be an integer, got false",)),
    ("label-smoothing-range", {"study.toml": study(recipe=recipe(label_smoothing="1.5"))}, RUN, ("'label_smoothing' must be in [0, 1), got 1.5",)),
    ("recipe-key-unknown", {"study.toml": study(recipe=recipe(epoch="3"))}, RUN, ("unknown key 'epoch'", "did you mean 'epochs'")),
    ("distill-temperature", {"study.toml": study(recipe=RECIPE + '\n\n[[recipe]]\nname = "s"\nkind = "distill"\nparent = "mlp"\ntemperature = 0.0')}, RUN, ("'temperature' must be positive, got 0.0",)),
    ("prune-sparsity", {"study.toml": study(recipe=RECIPE + '\n\n[[recipe]]\nname = "p"\nkind = "prune"\nparent = "mlp"\nsparsity = 1.0')}, RUN, ("'sparsity' must be in [0, 1), got 1.0",)),
    ("transfer-strategy", {"study.toml": study(recipe='name = "t"\nkind = "transfer"\nstrategy = "bogus"')}, RUN, ("unknown strategy 'bogus'",)),
    ("selfsup-then", {"study.toml": study(recipe='name = "s"\nkind = "selfsup"\nthen = 3')}, RUN, ("'then' must be a string, got 3",)),
    ("n-boot-huge", {"study.toml": study(checks='run = ["performance"]\nn_boot = 100000000')}, RUN, ("'n_boot' must be in [100, 100_000]", "e.g. n_boot = 1000")),
    ("n-boot-small", {"study.toml": study(checks='run = ["performance"]\nn_boot = 10')}, RUN, ("'n_boot' must be in [100, 100_000]", "got 10")),
    ("n-boot-string", {"study.toml": study(checks='run = ["performance"]\nn_boot = "1000"')}, RUN, ("'n_boot' must be an integer, got \"1000\"",)),
    ("n-boot-bool", {"study.toml": study(checks='run = ["performance"]\nn_boot = true')}, RUN, ("'n_boot' must be an integer, got true",)),
    ("seed-negative", {"study.toml": study(top="seed = -1")}, RUN, ("'seed' must be in [0, 4_294_967_295]", "got -1")),
    ("seed-float", {"study.toml": study(top="seed = 1.5")}, RUN, ("'seed' must be an integer, got 1.5",)),
    ("seed-huge", {"study.toml": study(top="seed = 1099511627776")}, RUN, ("'seed' must be in [0, 4_294_967_295]",)),
    ("calibration-bins", {"study.toml": study(checks='run = ["calibration"]\nn_boot = 100\n[checks.calibration]\nn_bins = 1')}, RUN, ("'n_bins' must be at least 2, got 1",)),
    ("calibration-bins-bool", {"study.toml": study(checks='run = ["calibration"]\nn_boot = 100\n[checks.calibration]\nn_bins = true')}, RUN, ("'n_bins' must be an integer, got true",)),
    ("fairness-min-group", {"study.toml": study(checks='run = ["fairness"]\nn_boot = 100\n[checks.fairness]\nmin_group_size = -1')}, RUN, ("'min_group_size' must be at least 1, got -1",)),
    ("robustness-severities", {"study.toml": study(checks='run = ["robustness"]\nn_boot = 100\n[checks.robustness]\nseverities = [0, 9]')}, RUN, ("'severities' entries must be in [1, 5], got [0, 9]",)),
    ("efficiency-repeats", {"study.toml": study(checks='run = ["efficiency"]\nn_boot = 100\n[checks.efficiency]\nrepeats = 0')}, RUN, ("'repeats' must be at least 1, got 0",)),
    ("ood-k", {"study.toml": study(checks='run = ["ood"]\nn_boot = 100\n[checks.ood]\nk = 0')}, RUN, ("'k' must be at least 1, got 0",)),
    ("slices-alpha", {"study.toml": study(checks='run = ["slices"]\nn_boot = 100\n[checks.slices]\nalpha = 2.0')}, RUN, ("'alpha' must be in [0, 1], got 2.0",)),
    ("check-options-not-table", {"study.toml": study(checks='run = ["calibration"]\ncalibration = 3')}, RUN, ("'calibration' must be a table of the check's options",)),
    # the study file's structure
    ("study-missing", {}, RUN, ("study file not found",)),
    ("study-is-folder", {"study.toml/x": "x"}, RUN, ("study file not found",)),
    ("study-binary", {"study.toml": b"\xff\xfe\x00garbage"}, RUN, ("not a text file", "give a TOML study file")),
    ("study-toml-syntax", {"study.toml": "[task\nbuiltin = 1"}, RUN, ("not valid TOML", "fix the syntax")),
    ("study-empty", {"study.toml": ""}, RUN, ("missing [task]",)),
    ("study-top-key", {"study.toml": study(top='seeed = 1')}, RUN, ("unknown key 'seeed'", "did you mean 'seed'")),
    ("study-name", {"study.toml": study().replace('name = "bad"', 'name = "bad name!"')}, RUN, ("must be letters, digits",)),
    ("recipe-none", {"study.toml": 'name = "x"\n[task]\nbuiltin = "digits"\n'}, RUN, ("no [[recipe]]",)),
    ("recipe-no-kind", {"study.toml": study(recipe='name = "mlp"\narch = "mlp"')}, RUN, ("needs a 'kind'",)),
    ("recipe-kind-unknown", {"study.toml": study(recipe='name = "mlp"\nkind = "trian"')}, RUN, ("unknown recipe kind 'trian'", "did you mean 'train'")),
    ("recipe-duplicate", {"study.toml": study(recipe=RECIPE + "\n\n[[recipe]]\n" + RECIPE)}, RUN, ("the name is used twice",)),
    ("recipe-parent-unknown", {"study.toml": study(recipe=RECIPE + '\n\n[[recipe]]\nname = "q"\nkind = "quantize"\nparent = "mlpp"')}, RUN, ("parent 'mlpp' is not a recipe listed above",)),
    ("draws-zero", {"study.toml": study(recipe=recipe(draws="0"))}, RUN, ("draws must be a positive integer",)),
    ("labels-per-class-zero", {"study.toml": study(recipe=recipe(labels_per_class="0"))}, RUN, ("labels_per_class must be a positive integer",)),
    ("labels-per-class-too-many", {"study.toml": study(recipe=recipe(labels_per_class="1000"))}, RUN, ("labels_per_class = 1000", "has only", "use labels_per_class <=")),
    ("task-labels-per-class-too-many", {"study.toml": study(task='builtin = "digits"\nlabels_per_class = 500')}, RUN, ("labels_per_class = 500", "use labels_per_class <=")),
    ("checks-run-string", {"study.toml": study(checks='run = "performance"')}, RUN, ("'run' must be a list of check names",)),
    ("checks-run-unknown", {"study.toml": study(checks='run = ["perfomance"]')}, RUN, ("unknown check 'perfomance'", "did you mean 'performance'")),
    # names resolved against the checks that run and the loaded task
    ("gate-unmeasured", {"study.toml": study(policy='gates = ["ece <= 0.05"]')}, RUN, ("gate 'ece <= 0.05' reads 'ece', which no check in [checks] run produces", "add 'calibration' to [checks] run")),
    ("objective-unmeasured", {"study.toml": study(policy='objectives = ["minimise latency_p50_ms"]')}, RUN, ("reads 'latency_p50_ms'", "add 'efficiency'")),
    ("gate-unknown-metric", {"study.toml": study(policy='gates = ["acuracy >= 0.9"]')}, RUN, ("unknown metric 'acuracy'", "did you mean 'accuracy'")),
    ("gate-unreadable", {"study.toml": study(policy='gates = ["accuracy is high"]')}, RUN, ("cannot read gate", "metric >= number")),
    ("policy-key", {"study.toml": study(policy='gate = ["accuracy >= 0.9"]')}, RUN, ("unknown key 'gate'", "did you mean 'gates'")),
    ("fairness-group-no-groups", {"study.toml": study(checks='run = ["fairness"]\nn_boot = 100\n[checks.fairness]\ngroup = "race"')}, RUN, ("group 'race' is not in the task", "builtin task 'digits' has no group attribute")),
    ("fairness-group-unknown", {"study.toml": study(task=TABLE + '\ngroups = ["race"]', checks='run = ["fairness"]\nn_boot = 100\n[checks.fairness]\ngroup = "sex"'), "loans.csv": with_table()}, RUN, ("group 'sex' is not a group attribute", "use one of: race")),
    ("fairness-group-table-hint", {"study.toml": study(task=TABLE, checks='run = ["fairness"]\nn_boot = 100\n[checks.fairness]\ngroup = "race"'), "loans.csv": with_table()}, RUN, ("group 'race' is not in the task", 'add groups = ["<column>"] to [task]')),
    ("fairness-positive-unknown", {"study.toml": study(task=TABLE + '\ngroups = ["race"]', checks='run = ["fairness"]\nn_boot = 100\n[checks.fairness]\npositive = "approved"'), "loans.csv": with_table()}, RUN, ("positive class 'approved' is not a class of the task", "use one of: no, yes")),
    ("robustness-reference-unknown", {"study.toml": study(checks='run = ["robustness"]\nn_boot = 100\n[checks.robustness]\nreference = "cnn"')}, RUN, ("reference 'cnn' is not a recipe of the study", "use one of: mlp")),
    ("cnn-on-a-table", {"study.toml": study(task=TABLE, recipe=recipe(arch='"cnn"')), "loans.csv": with_table()}, RUN, ("arch 'cnn'", "use 'mlp' for this task")),
    ("transfer-on-images", {"study.toml": study(recipe='name = "t"\nkind = "transfer"')}, RUN, ("transfer needs a text task", 'use kind = "train"')),
    ("fewshot-on-images", {"study.toml": study(recipe='name = "f"\nkind = "fewshot"')}, RUN, ("only installed for text", "set parent =")),
    ("ood-sets-unknown", {"study.toml": study(checks='run = ["ood"]\nn_boot = 100\n[checks.ood]\nsets = ["bogus"]')}, RUN, ("sets must be among",)),
    ("task-ood-not-table", {"study.toml": study(task='builtin = "digits"\nood = "other"')}, RUN, ("ood: must be a table",)),
    # the [task] table and builtin tasks
    ("builtin-unknown", {"study.toml": study(task='builtin = "digitz"')}, RUN, ("unknown builtin task 'digitz'", "did you mean 'digits'")),
    ("builtin-not-string", {"study.toml": study(task="builtin = 3")}, RUN, ("unknown builtin task 3",)),
    ("builtin-option-unknown", {"study.toml": study(task='builtin = "digits"\ncolour = true')}, RUN, ("unknown key 'colour'", "allowed: fractions")),
    ("builtin-fractions-two", {"study.toml": study(task='builtin = "digits"\nfractions = [0.5, 0.5]')}, RUN, ("'fractions' must be a list of 3 numbers",)),
    ("builtin-fractions-sum", {"study.toml": study(task='builtin = "digits"\nfractions = [0.9, 0.2, 0.1]')}, RUN, ("must be three non-negative numbers that sum to 1",)),
    ("holdout-unknown", {"study.toml": study(task='builtin = "digits"\nholdout_classes = ["x"]')}, RUN, ("holdout_classes ['x'] are not classes of the task",)),
    # data files
    ("table-missing", {"study.toml": study(task='path = "missing.csv"\nlabel = "approved"')}, RUN, ("missing.csv: not found", "check the path")),
    ("table-missing-no-label", {"study.toml": study(task='path = "missing.csv"')}, RUN, ("missing.csv: not found",)),
    ("folder-missing", {"study.toml": study(task='path = "no_images"')}, RUN, ("no_images: not found",)),
    ("table-no-label-key", {"study.toml": study(task='path = "loans.csv"'), "loans.csv": with_table()}, RUN, ("tables need label",)),
    ("table-label-column-missing", {"study.toml": study(task='path = "loans.csv"\nlabel = "aproved"'), "loans.csv": with_table()}, RUN, ("no label column 'aproved'", "did you mean 'approved'", "f11", "race, approved")),
    ("table-label-as-feature", {"study.toml": study(task=TABLE + '\nfeatures = ["f00", "approved"]'), "loans.csv": with_table()}, RUN, ("the label column 'approved' is listed in features", "remove it")),
    ("table-inf", {"study.toml": study(task=TABLE), "loans.csv": with_table(f03=lambda n: np.where(np.arange(n) == 7, np.inf, 1.0))}, RUN, ("column 'f03' holds infinite values", "row 7")),
    ("table-id-column", {"study.toml": study(task=TABLE), "loans.csv": lambda d: table(d, rows=10_000, customer=lambda n: [f"C{i:05d}" for i in range(n)])}, RUN, ("column 'customer' has 10,000 distinct values", "like an identifier", "leave it out")),
    ("table-row-index", {"study.toml": study(task=TABLE), "loans.csv": with_table(**{"Unnamed: 0": lambda n: np.arange(n)})}, RUN, ("column 'Unnamed: 0' numbers the rows", "index=False")),
    ("table-one-class", {"study.toml": study(task=TABLE), "loans.csv": with_table(approved="yes")}, RUN, ("has 1 distinct value", "at least two")),
    ("table-groups-string", {"study.toml": study(task=TABLE + '\ngroups = "race"'), "loans.csv": with_table()}, RUN, ("'groups' must be a list of strings",)),
    ("table-group-missing", {"study.toml": study(task=TABLE + '\ngroups = ["sex"]'), "loans.csv": with_table()}, RUN, ("no group column 'sex'",)),
    ("table-split-column-values", {"study.toml": study(task=TABLE + '\nsplit_column = "race"'), "loans.csv": with_table()}, RUN, ("split column 'race' has values", "use train, val and test")),
    ("table-unknown-key", {"study.toml": study(task=TABLE + '\nlable = "x"'), "loans.csv": with_table()}, RUN, ("unknown key 'lable'", "did you mean 'label'")),
    ("format-unknown", {"study.toml": study(task='path = "loans.csv"\nformat = "xml"'), "loans.csv": with_table()}, RUN, ("unknown format 'xml'",)),
    ("table-not-csv", {"study.toml": study(task='path = "loans.csv"\nlabel = "approved"'), "loans.csv": b"\x00\x01\x02\x03" * 10}, RUN, ("loans.csv",)),
    ("npz-lengths", {"study.toml": study(task=NPZ), "arrays.npz": lambda d: npz(d, x=_xy()[0], y=_xy()[1][:50])}, RUN, ("x has 60 rows but y has 50", "one label per row")),
    ("npz-nan", {"study.toml": study(task=NPZ), "arrays.npz": lambda d: npz(d, x=np.where(np.arange(240).reshape(60, 4) == 9, np.nan, _xy()[0]), y=_xy()[1])}, RUN, ("arrays.npz: x holds NaN or infinite values", "row 2", "replace or drop")),
    ("npz-inf", {"study.toml": study(task=NPZ), "arrays.npz": lambda d: npz(d, x=np.full((60, 4), np.inf, np.float32), y=_xy()[1])}, RUN, ("NaN or infinite values",)),
    ("npz-no-y", {"study.toml": study(task=NPZ), "arrays.npz": lambda d: npz(d, x=_xy()[0])}, RUN, ("it needs arrays x and y",)),
    ("npz-garbage", {"study.toml": study(task=NPZ), "arrays.npz": b"PK\x03\x04 not really a zip"}, RUN, ("cannot read arrays",)),
    ("npz-object", {"study.toml": study(task=NPZ), "arrays.npz": lambda d: npz(d, x=np.array([{"a": 1}] * 60, dtype=object), y=_xy()[1])}, RUN, ("cannot read arrays", "without object arrays")),
    ("npz-y-2d", {"study.toml": study(task=NPZ), "arrays.npz": lambda d: npz(d, x=_xy()[0], y=_xy()[1].reshape(30, 2))}, RUN, ("give x as (N, ...) inputs and y as (N,) labels",)),
    ("npz-split-shapes", {"study.toml": study(task=NPZ), "arrays.npz": lambda d: npz(d, x_train=_xy()[0], y_train=_xy()[1], x_test=_xy(d=5)[0], y_test=_xy()[1])}, RUN, ("splits differ in input shape",)),
    ("npz-modality", {"study.toml": study(task=NPZ + '\nmodality = "video"'), "arrays.npz": lambda d: npz(d, x=_xy()[0], y=_xy()[1])}, RUN, ("unknown modality 'video'",)),
    ("image-size-string", {"study.toml": study(task=IMAGES + '\nsize = "32x32"'), "images": images}, RUN, ("'size' must be a list of 2 integers, got \"32x32\"",)),
    ("image-size-zero", {"study.toml": study(task=IMAGES + "\nsize = [0, 0]"), "images": images}, RUN, ("'size' entries must be in [1, 65_535]", "got [0, 0]")),
    ("image-size-huge", {"study.toml": study(task=IMAGES + "\nsize = [5000, 5000]"), "images": images}, RUN, ("24 images at 5000x5000 need about", "set a smaller size")),
    ("image-header-huge", {"study.toml": study(task=IMAGES), "images": images, "images/c0/bomb.png": png_header(30000, 30000)}, RUN, ("bomb.png: image header claims", "remove the file")),
    ("image-size-three", {"study.toml": study(task=IMAGES + "\nsize = [8, 8, 3]"), "images": images}, RUN, ("'size' must be a list of 2 integers, got [8, 8, 3]",)),
    ("image-truncated", {"study.toml": study(task=IMAGES), "images": images, "images/c1/broken.png": png_header(8, 8)[:30]}, RUN, ("broken.png: cannot read image", "remove or replace it")),
    ("image-one-class", {"study.toml": study(task=IMAGES), "images": lambda d: images(d, classes=1)}, RUN, ("found 1 class folder", "at least two")),
    ("image-empty-class", {"study.toml": study(task=IMAGES), "images": images, "images/c2/readme.txt": "x"}, RUN, ("class folder holds no images",)),
    ("image-mixed-sizes", {"study.toml": study(task=IMAGES), "images": images, "images/c0/wide.png": lambda d: __import__("PIL.Image").Image.new("L", (16, 8)).save(d / "images/c0/wide.png")}, RUN, ("images differ in size", "set size = [H, W]")),
    ("image-grayscale-string", {"study.toml": study(task=IMAGES + '\ngrayscale = "yes"'), "images": images}, RUN, ("'grayscale' must be true or false",)),
    ("image-lazy-int", {"study.toml": study(task=IMAGES + "\nlazy = 1"), "images": images}, RUN, ("'lazy' must be true or false, got 1",)),
    ("task-path-not-string", {"study.toml": study(task="path = 3")}, RUN, ("'path' must be a string",)),
    # model files (the load recipe)
    ("load-missing", {"study.toml": study(recipe=LOAD)}, RUN, ("model.safetensors: model file not found", "relative to the study file")),
    ("load-format", {"study.toml": study(recipe=LOAD.replace(".safetensors", ".pt")), "models/model.pt": b"x"}, RUN, ("unknown model format '.pt'",)),
    ("load-json-garbage", {"study.toml": study(recipe=LOAD), "models": saved_model, "models/model.json": "{not json"}, RUN, ("model.json: not valid JSON", "save the candidate again")),
    ("load-json-list", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: "[1, 2]")}, RUN, ("holds a JSON list, not an object",)),
    ("load-json-field-missing", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m.pop("arch"))}, RUN, ("field 'arch' is missing",)),
    ("load-json-seed-type", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m.update(seed="x"))}, RUN, ("field 'seed' must be an integer",)),
    ("load-json-shape", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m["arch"].update(input_shape=[0, 8, 8]))}, RUN, ("input_shape [0, 8, 8]",)),
    ("load-json-arch-unknown", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m["arch"].update(name="resnet"))}, RUN, ("unknown architecture 'resnet'",)),
    ("load-json-arch-option", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m["arch"].update(hidden=[0]))}, RUN, ("'hidden' entries must be at least 1",)),
    ("load-json-id", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m.update(id="../../etc"))}, RUN, ("field 'id' must be 12 hex digits",)),
    ("load-json-transform", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m.update(transforms=["exec"]))}, RUN, ("unknown transform 'exec'",)),
    ("load-json-config-changed", {"study.toml": study(recipe=LOAD), "models": edit_json(lambda m: m.update(config={"epochs": 999}))}, RUN, ("content hash", "differs from the recorded", "save the candidate again")),
    ("load-weights-changed", {"study.toml": study(recipe=LOAD), "models": edit_weights}, RUN, ("content hash", "differs from the recorded")),
    ("load-weights-garbage", {"study.toml": study(recipe=LOAD), "models": saved_model, "models/model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!"}, RUN, ("model.safetensors: cannot read candidate", "save it again")),
    ("load-wrong-task", {"study.toml": study(task=TABLE, recipe=LOAD), "models": saved_model, "loans.csv": with_table()}, RUN, ("load it with the task it was made for",)),
    ("load-onnx-garbage", {"study.toml": study(recipe=LOAD.replace(".safetensors", ".onnx")), "models/model.onnx": b"not a graph"}, RUN, ("model.onnx: ONNX model: cannot read the graph", "export it again")),
    # the command line and the runs folder
    ("cli-seed-negative", {"study.toml": study()}, [*RUN, "--seed", "-1"], ("argument --seed: -1 is out of range", "0 to 4294967295")),
    ("cli-seed-text", {"study.toml": study()}, [*RUN, "--seed", "abc"], ("'abc' is not an integer",)),
    ("cli-threads-zero", {"study.toml": study()}, [*RUN, "--threads", "0"], ("argument --threads: 0 is out of range",)),
    ("cli-threads-text", {"study.toml": study()}, [*RUN, "--threads", "many"], ("'many' is not an integer",)),
    ("cli-device-unknown", {"study.toml": study()}, [*RUN, "--device", "tpu"], ("--device tpu", "use auto, cpu, cuda or cuda:N")),
    ("cli-command-unknown", {}, ["trian"], ("invalid choice: 'trian'", "see 'assay --help'")),
    ("cli-option-unknown", {"study.toml": study()}, [*RUN, "--epochs", "3"], ("unrecognized arguments: --epochs 3",)),
    ("cli-run-no-study", {}, ["run"], ("the following arguments are required: study",)),
    ("cli-out-is-file", {"study.toml": study(), "runs": "a file, not a folder"}, RUN, ("runs",)),
    ("cli-show-no-runs", {}, ["show", "latest", "--out", "{dir}/runs"], ("no runs stored",)),
    ("cli-report-no-runs", {}, ["report", "nope", "--out", "{dir}/runs"], ("no runs stored",)),
    ("cli-max-drop", {"model.onnx": b"x"}, ["compress", "{dir}/model.onnx", "--task", "digits", "--max-drop", "2", "--out", "{dir}/runs"], ("--max-drop: 2.0 is not in [0, 1)",)),
    ("cli-max-drop-text", {}, ["compress", "m.onnx", "--task", "digits", "--max-drop", "lots"], ("argument --max-drop: invalid float value",)),
    ("cli-compress-missing", {}, ["compress", "{dir}/nope.safetensors", "--task", "digits", "--out", "{dir}/runs"], ("nope",)),
]


def _write(folder: Path, files: dict) -> None:
    for rel, content in files.items():
        path = folder / rel
        if callable(content):
            path.parent.mkdir(parents=True, exist_ok=True)
            content(folder)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _runs(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_dir()} if out.is_dir() else set()


@pytest.fixture(autouse=True)
def _four_gigabytes(monkeypatch):
    """Memory estimates are judged against 4 GB, whatever this machine has, so the corpus means the same everywhere."""
    import assay.data.memory

    monkeypatch.setattr(assay.data.memory, "available_bytes", lambda: 4 * 2**30)


def test_the_corpus_is_large_and_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 80 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("files, argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(tmp_path, capsys, monkeypatch, files, argv, expected):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, files)
    out = tmp_path / "runs"
    before = _runs(out)
    code = main([a.replace("{dir}", str(tmp_path)) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("assay: error: "), captured.err
    assert "Traceback" not in captured.err
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in: {lines[0]}"
    assert _runs(out) == before, "a run folder was written"


# --- a few through a real process: what a shell sees ------------------------------------

def _assay(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "assay", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_in_a_real_process_errors_are_one_line_and_version_answers(tmp_path):
    (tmp_path / "study.toml").write_text(study(recipe=recipe(epochs="true")))
    for args in (["run", "study.toml", "--seed", "-1"], ["run", "study.toml"], ["run", "missing.toml"]):
        out = _assay(*args, cwd=tmp_path)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())
    version = _assay("--version")
    assert version.returncode == 0 and version.stdout.startswith("assay ")


def test_show_into_a_closed_pipe_ends_quietly(tmp_path):
    """`assay show ... | head -1`: the reader leaves early; no BrokenPipe traceback."""
    script = ("import sys, assay.cli as c; c._cmd_runs = lambda a: [print('row', i) for i in range(200000)] and 0;"
              " c._COMMANDS['runs'] = c._cmd_runs; sys.exit(c.main(['runs']))")
    shell = f"{sys.executable} -c \"{script}\" | head -1"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.stdout == "row 0\n"
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def test_relative_load_path_is_relative_to_the_study_file(tmp_path, monkeypatch):
    from assay.data.builtin import load_builtin
    from assay.resolve import validate_against_task
    from assay.spec import load_study

    folder = tmp_path / "project"
    folder.mkdir()
    saved_model(folder)
    (folder / "study.toml").write_text(study(recipe=LOAD))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_study(folder / "study.toml")
    assert spec.recipes[0].options["path"] == str(folder / "models" / "model.safetensors")
    validate_against_task(spec, load_builtin("digits"))  # found, schema and hash hold, fits the task


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import argparse

    from assay import cli

    args = argparse.Namespace(quiet=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert cli._progress(args) is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert cli._progress(args) is True
    assert cli._progress(argparse.Namespace(quiet=True)) is False
