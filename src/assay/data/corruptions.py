"""Corruptions by modality, each at five severities.

Image corruptions follow the families of ImageNet-C (Hendrycks & Dietterich
2019, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations"), with strengths scaled to small images on [0, 1]. Signal,
tabular and text corruptions are the analogous everyday failures of those
inputs. Every function takes ``(x, severity, rng)`` and returns a new array;
the same rng state gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _level(values: tuple[float, ...], severity: int) -> float:
    return values[severity - 1]


# --- images (N, C, H, W) on [0, 1] -----------------------------------------
def gaussian_noise(x, s, rng):
    return np.clip(x + rng.normal(0, _level((0.08, 0.12, 0.18, 0.26, 0.38), s), x.shape), 0, 1)


def shot_noise(x, s, rng):
    lam = _level((60, 25, 12, 5, 3), s)  # photons per unit intensity
    return np.clip(rng.poisson(np.clip(x, 0, 1) * lam) / lam, 0, 1)


def impulse_noise(x, s, rng):
    amount = _level((0.03, 0.06, 0.09, 0.17, 0.27), s)
    out = x.copy()
    hit = rng.random(x.shape) < amount
    out[hit] = rng.integers(0, 2, hit.sum())  # salt or pepper
    return out


def gaussian_blur(x, s, rng):
    sigma = _level((0.5, 0.75, 1.0, 1.5, 2.0), s) * max(x.shape[-2:]) / 16  # relative to image size
    radius = max(1, int(np.ceil(2 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    n, c, h, w = t.shape
    t = t.reshape(n * c, 1, h, w)  # (N*C, 1, H, W): blur each channel alike
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    t = F.conv2d(F.pad(t, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return t.reshape(n, c, h, w).numpy()


def contrast(x, s, rng):
    c = _level((0.5, 0.4, 0.3, 0.2, 0.1), s)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return np.clip((x - mean) * c + mean, 0, 1)


def brightness(x, s, rng):
    return np.clip(x + _level((0.1, 0.2, 0.3, 0.4, 0.5), s), 0, 1)


def pixelate(x, s, rng):
    factor = _level((0.75, 0.6, 0.5, 0.4, 0.3), s)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    h, w = t.shape[-2:]
    small = F.interpolate(t, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest").numpy()


def affine(x, s, rng):
    """Rotation by up to ±degrees and a shift by up to ±fraction of the size, random per image."""
    degrees = _level((5, 10, 15, 22, 30), s)
    shift = _level((0.04, 0.07, 0.1, 0.13, 0.16), s)
    n = len(x)
    angle = np.deg2rad(rng.uniform(-degrees, degrees, n))
    tx, ty = (rng.uniform(-shift, shift, n) * 2 for _ in range(2))  # grid units span 2
    theta = np.stack([np.stack([np.cos(angle), -np.sin(angle), tx], 1), np.stack([np.sin(angle), np.cos(angle), ty], 1)], 1)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    grid = F.affine_grid(torch.from_numpy(theta).float(), list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False).numpy()


def occlusion(x, s, rng):
    """A black square covering a growing share of the side, at a random place per image."""
    frac = _level((0.2, 0.3, 0.4, 0.5, 0.6), s)
    out = x.copy()
    h, w = x.shape[-2:]
    ph, pw = max(1, round(h * frac)), max(1, round(w * frac))
    for i, (top, left) in enumerate(zip(rng.integers(0, h - ph + 1, len(x)), rng.integers(0, w - pw + 1, len(x)))):
        out[i, :, top : top + ph, left : left + pw] = 0
    return out


# --- signals (N, C, L) -------------------------------------------------------
def signal_noise(x, s, rng):
    scale = x.std(axis=(1, 2), keepdims=True) + 1e-8
    return x + rng.normal(0, 1, x.shape) * scale * _level((0.1, 0.2, 0.35, 0.5, 0.8), s)


def time_shift(x, s, rng):
    frac = _level((0.03, 0.06, 0.1, 0.15, 0.2), s)
    L = x.shape[-1]
    shifts = rng.integers(-round(frac * L), round(frac * L) + 1, len(x))
    return np.stack([np.roll(row, k, axis=-1) for row, k in zip(x, shifts)])


def amplitude(x, s, rng):
    spread = _level((0.1, 0.2, 0.3, 0.45, 0.6), s)
    return x * rng.uniform(1 - spread, 1 + spread, (len(x), 1, 1))


def signal_dropout(x, s, rng):
    keep = rng.random((len(x), 1, x.shape[-1])) >= _level((0.05, 0.1, 0.2, 0.3, 0.4), s)
    return x * keep


# --- tabular (N, D) standardised features ------------------------------------
def feature_noise(x, s, rng):
    """Noise in units of each column's spread (columns are standardised on train)."""
    spread = x.std(axis=0, keepdims=True) + 1e-8
    return x + rng.normal(0, 1, x.shape) * spread * _level((0.1, 0.2, 0.35, 0.5, 0.75), s)


def missing_values(x, s, rng, fill: np.ndarray | None = None):
    """Blank a share of the cells; the task's imputation fills them (``fill`` per column, default 0 = train mean)."""
    fill = np.zeros(x.shape[1], dtype=x.dtype) if fill is None else fill
    hit = rng.random(x.shape) < _level((0.05, 0.1, 0.2, 0.3, 0.5), s)
    return np.where(hit, fill[None, :], x)


def mean_shift(x, s, rng):
    """Shift one column (the same for every row, chosen by the rng) by severity x its spread."""
    out = x.copy()
    col = rng.integers(0, x.shape[1])
    out[:, col] += _level((0.25, 0.5, 1.0, 1.5, 2.0), s) * (x[:, col].std() + 1e-8)
    return out


# --- text: object arrays of strings -------------------------------------------
def typos(x, s, rng):
    rate = _level((0.02, 0.04, 0.07, 0.1, 0.15), s)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

    def corrupt(text: str) -> str:
        chars = list(text)
        for i in np.flatnonzero(rng.random(len(chars)) < rate):
            op = rng.integers(0, 3)
            if op == 0:
                chars[i] = ""
            elif op == 1:
                chars[i] = str(rng.choice(letters))
            elif i + 1 < len(chars):
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
        return "".join(chars)

    return np.array([corrupt(t) for t in x], dtype=object)


def word_dropout(x, s, rng):
    rate = _level((0.05, 0.1, 0.2, 0.3, 0.4), s)
    return np.array([" ".join(w for w in t.split() if rng.random() >= rate) for t in x], dtype=object)


def case_punctuation(x, s, rng):
    rate = _level((0.1, 0.2, 0.4, 0.6, 0.9), s)
    strip = str.maketrans("", "", ".,;:!?'\"")

    def corrupt(text: str) -> str:
        if rng.random() < rate:
            text = text.upper() if rng.random() < 0.5 else text.lower()
        return text.translate(strip) if rng.random() < rate else text

    return np.array([corrupt(t) for t in x], dtype=object)


CORRUPTIONS: dict[str, dict[str, Corruption]] = {
    "image": {f.__name__: f for f in (gaussian_noise, shot_noise, impulse_noise, gaussian_blur, contrast, brightness, pixelate, affine, occlusion)},
    "signal": {"noise": signal_noise, "time_shift": time_shift, "amplitude": amplitude, "dropout": signal_dropout},
    "tabular": {"feature_noise": feature_noise, "missing_values": missing_values, "mean_shift": mean_shift},
    "text": {"typos": typos, "word_dropout": word_dropout, "case_punctuation": case_punctuation},
}
SEVERITIES = (1, 2, 3, 4, 5)
