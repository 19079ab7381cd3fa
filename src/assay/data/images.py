"""Image folders as a Task: ``root/<class>/*.png`` or ``root/{train,val,test}/<class>/``.

Headers are read before any pixel is decoded, so an image or a folder too
large for this machine is refused from an estimate, naming the file and the fix.
Test images equal, pixel for pixel after resizing, to a train or val image are
counted (``overlap.py``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from .lazy import LazyImages
from .memory import available_bytes, budget_bytes, size_text
from .overlap import with_shared_rows
from .splitting import SPLITS, Fractions, stratified_split
from .task import Split, Task

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _class_folders(root: Path) -> dict[str, list[Path]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders found; put images in {root}/<class name>/*.png")
    out = {}
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)}); add images or remove the folder")
        out[folder.name] = files
    return out


_BANDS = {"1": 1, "L": 1, "P": 1, "I": 4, "I;16": 2, "F": 4, "LA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "CMYK": 4}


def image_header(path: Path) -> tuple[tuple[int, int], str]:
    """``((W, H), mode)`` from the file's header alone, refusing an image too large to decode here."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own estimate below replaces PIL's warning
            with Image.open(path) as img:
                size, mode = img.size, img.mode
    except Image.DecompressionBombError as error:  # PIL's own limit: the header claims far more pixels than is sane
        numbers = [int(n) for n in re.findall(r"\d+", str(error))]
        claimed = f"{numbers[0]:,}" if numbers else "too many"
        raise DataError(f"{path}: image header claims {claimed} pixels, too many to decode; remove the file or shrink the image") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        reason = str(error).split("\n")[0] or type(error).__name__
        raise DataError(f"{path}: cannot read image ({reason}); remove or replace it") from None
    need = size[0] * size[1] * max(_BANDS.get(mode, 4), 1) * 2  # the decoded image and one converted copy
    if need > budget_bytes():
        raise DataError(f"{path}: image header claims {size[0]}x{size[1]} pixels, about {size_text(need)} to decode "
                        f"(this machine has {size_text(available_bytes())} available); remove the file or shrink the image")
    return size, mode


def read_image(path: Path, mode: str | None):
    """The decoded image at ``path`` (converted to ``mode`` when given); a truncated or unreadable file is a ``DataError``.

    Read its ``image_header`` first: that refuses a file too large to decode before any pixel is.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # its size was estimated from the header already
            img = Image.open(path)
        with img:
            img.load()  # decode fully: a truncated file fails here, not later
            return img.convert(mode) if mode else img.copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = str(error).split("\n")[0] or type(error).__name__
        raise DataError(f"{path}: cannot read image ({reason}); remove or replace it") from None


def load_image_folder(
    root: Path | str,
    *,
    name: str | None = None,
    size: tuple[int, int] | None = None,
    grayscale: bool | None = None,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
    lazy: bool = False,
) -> Task:
    """Images in ``root/<class>/`` (or ``root/{train,val,test}/<class>/``) as a Task.

    Args:
        size: ``(H, W)`` to resize every image to (bilinear); required when sizes differ.
        grayscale: force one channel (default: grey when every image is).
        fractions: train/val/test shares when the folder has no split sub-folders.
        lazy: keep file paths, not pixels; evaluation decodes batch by batch.

    Raises:
        DataError: missing folder, empty class, unreadable image (named), mixed sizes without ``size``.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found; check the path (paths in a study file are relative to it)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give a folder of class sub-folders")
    given = [s for s in SPLITS if (root / s).is_dir()]
    layout = {s: _class_folders(root / s) for s in given} if "train" in given else {"all": _class_folders(root)}
    classes = sorted(layout.get("train", layout.get("all", {})))
    for split, folders in layout.items():
        extra = sorted(set(folders) - set(classes))
        if extra:
            raise DataError(f"{root / split}: class folder(s) {extra} are not in train; every class needs training images")
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder ({', '.join(classes)}); a classifier needs at least two")

    files = [(split, c, f) for split, folders in layout.items() for c, fs in folders.items() for f in fs]
    # Headers first (no pixels decoded): sizes, modes and the memory the task will take,
    # so an image or a size too large is refused from an estimate instead of the process being killed.
    headers = [image_header(f) for _, _, f in files]
    sizes = [h[0] for h in headers]
    grey = all(h[1] in ("L", "1", "I", "I;16", "LA") for h in headers)
    mode = "L" if (grey if grayscale is None else grayscale) else "RGB"
    if size is None and len(set(sizes)) > 1:
        b = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise DataError(
            f"{root}: images differ in size ({files[0][2].name} is {sizes[0][0]}x{sizes[0][1]}, "
            f"{files[b][2].name} is {sizes[b][0]}x{sizes[b][1]}); set size = [H, W] in [task] to resize them all"
        )
    target = (int(size[1]), int(size[0])) if size is not None else sizes[0]  # PIL wants (W, H)
    channels = 1 if mode == "L" else 3
    need = len(files) * channels * target[0] * target[1] * 4 * 2  # float32 pixels, and the copy training makes
    if not lazy:
        need += sum(w * h * _BANDS.get(m, 4) for (w, h), m in headers)  # decoded images held while stacking
    if need > budget_bytes():
        raise DataError(f"{root}: {len(files)} images at {target[1]}x{target[0]} need about {size_text(need)} in memory "
                        f"(this machine has {size_text(available_bytes())} available); set a smaller size = [H, W] in [task]")
    # Every file is decoded once now, so a broken one is named before anything trains;
    # a lazy task keeps only the file list and decodes again batch by batch.
    images = []
    for _, _, f in files:
        img = read_image(f, None)
        if not lazy:
            images.append(img)
    if lazy:
        x = LazyImages([f for _, _, f in files], mode, target)
    else:
        from PIL import Image

        pixels = np.stack([np.asarray(img.convert(mode).resize(target, Image.BILINEAR) if img.size != target else img.convert(mode), dtype=np.float32) for img in images])
        x = (pixels / 255.0).reshape(len(images), target[1], target[0], -1).transpose(0, 3, 1, 2)  # (N, C, H, W)
    y = np.array([classes.index(c) for _, c, _ in files], dtype=np.int64)
    split_of = np.array([s for s, _, _ in files])
    parts, rule = _image_splits(split_of, y, fractions, seed, str(root))
    whole = Split(x, y)
    task = Task(
        name=name or root.name,
        modality="image",
        class_names=tuple(classes),
        **{s: whole.subset(idx) if lazy else Split(np.ascontiguousarray(x[idx]), y[idx]) for s, idx in parts.items()},
        description=f"Images from {root.name}/ ({len(classes)} classes).",
        info={"source": str(root), "split rule": rule, "resize": f"bilinear to {target[1]}x{target[0]}" if size is not None else "none (all one size)",
              "channels": "grey" if mode == "L" else "RGB", "loading": "lazy (decoded batch by batch)" if lazy else "in memory"},
        origin="image_folder",
    )
    return with_shared_rows(task)  # pixels as the model sees them: a lazy folder is decoded again, a batch at a time


def _image_splits(split_of: np.ndarray, y: np.ndarray, fractions: Fractions, seed: int, source: str) -> tuple[dict[str, np.ndarray], str]:
    if "all" in split_of:
        train, val, test = stratified_split(y, fractions, seed=seed, source=source)
        return {"train": train, "val": val, "test": test}, f"stratified {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%}, seed {seed}"
    parts = {s: np.flatnonzero(split_of == s) for s in SPLITS}
    missing = [s for s in ("val", "test") if len(parts[s]) == 0]
    if missing:
        share = 0.15 if len(missing) == 1 else 0.3
        inner = (1 - share, share, 0.0) if len(missing) == 1 else (0.7, 0.15, 0.15)
        train, a, b = stratified_split(y[parts["train"]], inner, seed=seed, source=source)
        carved = [parts["train"][a]] if len(missing) == 1 else [parts["train"][a], parts["train"][b]]
        parts["train"] = parts["train"][train]
        for s, idx in zip(missing, carved):
            parts[s] = idx
        return parts, f"folders train/ val/ test/; {' and '.join(missing)} carved from train/ (stratified, seed {seed})"
    return parts, "folders train/ val/ test/"
