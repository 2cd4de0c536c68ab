"""Colour jitter for a whole clip: brightness, contrast and saturation as one affine colour map.

PySlowFast's ``color_jitter`` (torchvision's ``ColorJitter(s, s, s)`` without hue): three
factors each uniform in ``[max(0, 1 - s), 1 + s]``, applied in random order, each a blend --
brightness with black, contrast with the mean grey of the image, saturation with each pixel's
grey. As in PySlowFast the blends are not clipped in between, so the three compose into one
affine map ``y = A x + o`` of a pixel's RGB (the mean grey follows the map exactly); the result
is clipped and rounded to uint8 once. Drawn once per clip; the mean grey is the clip's, so every
frame gets the same colour map. One float pass instead of one per blend.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

GREY = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, PIL's convert("L")
FACTORS = ("brightness", "contrast", "saturation")


@dataclass(frozen=True)
class Jitter:
    """The factors one clip gets, and the order they are applied in."""

    brightness: float
    contrast: float
    saturation: float
    order: tuple[str, ...] = FACTORS


def draw_color_jitter(strength: float, rng: random.Random) -> Jitter:
    """Factors in ``[max(0, 1 - s), 1 + s]`` and a random order."""
    if strength < 0:
        raise ValueError(f"color_jitter strength must be >= 0, got {strength}")
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    factors = {name: rng.uniform(low, high) for name in FACTORS}
    order = list(FACTORS)
    rng.shuffle(order)
    return Jitter(order=tuple(order), **factors)


def colour_map(jitter: Jitter, mean_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(A, o)`` with ``jitter(x) = A x + o`` before clipping, for a clip whose mean colour is ``mean_rgb``."""
    a, o = np.eye(3), np.zeros(3)
    for name in jitter.order:
        f = getattr(jitter, name)
        if name == "brightness":  # blend with black
            a, o = f * a, f * o
        elif name == "contrast":  # blend with the current image's mean grey
            grey = float(GREY @ (a @ mean_rgb + o))
            a, o = f * a, f * o + (1.0 - f) * grey
        else:  # saturation: blend with each pixel's grey, w·(A x + o)
            a, o = f * a + (1.0 - f) * np.outer(np.ones(3), GREY @ a), f * o + (1.0 - f) * float(GREY @ o)
    return a, o


def apply_jitter(x: np.ndarray, jitter: Jitter) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> the jittered clip, same shape and dtype."""
    pixels = x.reshape(-1, 3).astype(np.float32)
    mean = np.ones(len(pixels), np.float32) @ pixels / len(pixels)  # a BLAS dot: numpy's axis-0 mean is ~20x slower
    a, o = colour_map(jitter, mean.astype(np.float64))
    out = pixels @ a.T.astype(np.float32)
    out += o.astype(np.float32)
    return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8).reshape(x.shape)
