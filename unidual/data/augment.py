"""Clip-consistent RandAugment on uint8 frames (colour jitter: :mod:`unidual.data.jitter`).

Every random choice (which ops, their signs) is drawn once per clip by
:func:`draw_randaugment`, and :func:`apply_ops` applies that one list to the whole ``(T, H, W, 3)`` uint8 clip: every frame gets the same
geometric warp (same index map) and the same colour mapping. Statistics that an op needs
(contrast's mean grey, autocontrast's range, equalize's histogram) are taken over the whole
clip, so one pixel value maps to one output value in every frame and motion is not turned
into flicker. An image is a one-frame clip, and then each op is PIL's / timm's op on it.

RandAugment follows timm's ``rand-m{M}-n{N}-inc1`` (what PySlowFast's ``AUG.AA_TYPE`` and
omnivision's configs use): ``N`` ops drawn with replacement from timm's 15, each applied with
probability 0.5, magnitude ``M`` on timm's 0-10 scale, the "increasing" variants (a larger M
is always a stronger change), geometric ops filled with grey 128, nearest-neighbour sampling
(timm picks bilinear/bicubic at random). No magnitude noise (timm's ``mstd``).

All ops keep uint8 pixels. Per-channel point ops (brightness, contrast, solarize, posterize,
autocontrast, equalize, invert) become 256-entry lookup tables -- consecutive ones composed into
one -- applied in a single pass; saturation and sharpness blend through float32; geometric ops
gather through an index map computed once per (op, argument, frame size) and cached. The arrays
are numpy, not torch: on a few thousand pixels a torch op may open an intra-op parallel region,
and on a busy machine with 2 threads such a region waited up to milliseconds for the second
thread (``round_`` on a 8x3x32x32 clip: 6 µs with one thread, 16 ms with two at load 13), while
numpy's are single-threaded (docs/performance.md, benchmarks/recipe_transforms.py).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from unidual.data.jitter import GREY

LEVEL_MAX = 10  # timm's magnitude scale (_LEVEL_DENOM)
FILL = 128  # grey behind rotated / sheared / translated frames (timm's fill)
APPLY_PROB = 0.5  # each drawn op is applied with this probability (timm's RandAugment)
OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "SolarizeAdd",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
)


@dataclass(frozen=True)
class Op:
    """One drawn op and its argument (angle, factor, bits, threshold, shift), sign included."""

    name: str
    arg: float = 0.0


def draw_randaugment(n: int, m: float, rng: random.Random) -> list[Op]:
    """The ops one clip gets: ``n`` draws from :data:`OPS`, each kept with probability 0.5."""
    if n < 0 or not 0 <= m <= LEVEL_MAX:
        raise ValueError(f"randaugment needs n >= 0 and 0 <= m <= {LEVEL_MAX}, got n={n}, m={m}")
    ops = []
    for _ in range(n):
        name = rng.choice(OPS)
        if rng.random() < APPLY_PROB:
            ops.append(Op(name, _argument(name, m / LEVEL_MAX, rng)))
    return ops


def apply_ops(x: np.ndarray, ops: Sequence[Op]) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> the same shape and dtype with ``ops`` applied, in order, to every frame.

    Consecutive per-channel point ops (:data:`POINT_OPS`) are composed into one 256-entry lookup
    table per channel and applied in a single pass; the statistics they need (mean grey, range,
    histogram of the image as it is at that op) come from the clip's histogram pushed through the
    table built so far, so the result is exactly that of applying them one by one.
    """
    lut: np.ndarray | None = None  # (3, 256): pending point ops, composed
    hist: np.ndarray | None = None  # (3, 256): histogram of x (before ``lut``), counted when an op needs it
    for op in ops:
        if op.name in POINT_OPS:
            current = _LEVELS if lut is None else lut
            stats = None
            if op.name in STATS_OPS:
                hist = _histogram(x) if hist is None else hist
                stats = _pushed(hist, current)
            lut = np.take_along_axis(POINT_OPS[op.name](stats, op.arg), current, 1)
            continue
        if lut is not None:
            x, lut, hist = _apply_lut(x, lut), None, None
        x = _APPLY[op.name](x, op.arg)
    return x if lut is None else _apply_lut(x, lut)


def _argument(name: str, level: float, rng: random.Random) -> float:
    """timm's increasing level functions; ``level`` = magnitude / 10."""
    sign = -1.0 if rng.random() < 0.5 else 1.0
    if name == "Rotate":
        return sign * 30.0 * level
    if name in ("ShearX", "ShearY"):
        return sign * 0.3 * level
    if name in ("TranslateX", "TranslateY"):
        return sign * 0.45 * level  # fraction of the frame's width / height
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return max(0.1, 1.0 + sign * 0.9 * level)
    if name == "Posterize":
        return float(4 - int(level * 4))  # bits kept
    if name == "Solarize":
        return float(256 - int(level * 256))  # threshold
    if name == "SolarizeAdd":
        return float(int(level * 110))
    return 0.0


# --------------------------------------------------------------------------- colour: point ops as lookup tables

STATS_OPS = ("AutoContrast", "Equalize", "Contrast")  # point ops that depend on the image's histogram


def _histogram(x: np.ndarray) -> np.ndarray:
    """Per-channel histogram of the whole clip, ``(3, 256)`` (Pillow's, on the frames stacked: ~4x numpy's bincount)."""
    t, h, w, c = x.shape
    return np.array(Image.fromarray(np.ascontiguousarray(x).reshape(t * h, w, c)).histogram()).reshape(3, 256)


def _pushed(hist: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """The histogram of the image after ``lut``: each level's count moved to the level it maps to."""
    flat = np.bincount((lut + np.arange(3)[:, None] * 256).reshape(-1), weights=hist.reshape(-1), minlength=768)
    return flat.reshape(3, 256).astype(np.int64)


def _apply_lut(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """The clip through the per-channel table ``lut`` ``(3, 256)``."""
    table = np.clip(lut, 0, 255).astype(np.uint8)
    out = np.empty_like(x)
    for c in range(3):
        out[..., c] = table[c].take(x[..., c], mode="wrap")  # uint8 indices: always in range
    return out


_LEVELS = np.tile(np.arange(256, dtype=np.int64), (3, 1))  # the identity table, one row per channel
_LEVELS.setflags(write=False)


def _blend_lut(degenerate: float | np.ndarray, factor: float) -> np.ndarray:
    """PIL's ImageEnhance on one level: ``degenerate + factor · (v - degenerate)``, rounded and clipped."""
    return np.clip(np.round(degenerate + factor * (_LEVELS - degenerate)), 0, 255).astype(np.int64)


def _brightness_lut(_hist: np.ndarray | None, factor: float) -> np.ndarray:
    return _blend_lut(0.0, factor)


def _contrast_lut(hist: np.ndarray | None, factor: float) -> np.ndarray:
    assert hist is not None
    means = (hist * np.arange(256)).sum(1) / hist.sum(1)
    return _blend_lut(float(GREY @ means), factor)  # one mean grey for the whole clip


def _invert_lut(_hist: np.ndarray | None, _arg: float) -> np.ndarray:
    return 255 - _LEVELS


def _posterize_lut(_hist: np.ndarray | None, bits: float) -> np.ndarray:
    b = int(bits)
    return _LEVELS if b >= 8 else _LEVELS & ((0xFF << (8 - b)) & 0xFF)


def _solarize_lut(_hist: np.ndarray | None, threshold: float) -> np.ndarray:
    return np.where(threshold <= _LEVELS, 255 - _LEVELS, _LEVELS)


def _solarize_add_lut(_hist: np.ndarray | None, add: float) -> np.ndarray:
    return np.where(_LEVELS < 128, np.minimum(_LEVELS + int(add), 255), _LEVELS)


def _autocontrast_lut(hist: np.ndarray | None, _arg: float) -> np.ndarray:
    """Stretch each channel's range over the clip to [0, 255]; a flat channel is left alone."""
    assert hist is not None
    out = _LEVELS.astype(np.float64)
    for c in range(3):
        used = np.flatnonzero(hist[c])
        low, high = used[0], used[-1]
        if high > low:
            out[c] = np.clip(np.round((out[c] - low) * (255.0 / (high - low))), 0, 255)
    return out.astype(np.int64)


def _equalize_lut(hist: np.ndarray | None, _arg: float) -> np.ndarray:
    """PIL's ``ImageOps.equalize`` per channel, with one histogram over the whole clip."""
    assert hist is not None
    out = _LEVELS.copy()
    for c in range(3):
        used = hist[c][hist[c] > 0]
        step = (used.sum() - used[-1]) // 255 if len(used) > 1 else 0
        if step:
            before = np.cumsum(hist[c]) - hist[c]  # pixels strictly below each level
            out[c] = np.minimum((step // 2 + before) // step, 255)
    return out


POINT_OPS: dict[str, Callable[[np.ndarray | None, float], np.ndarray]] = {
    "AutoContrast": _autocontrast_lut,
    "Equalize": _equalize_lut,
    "Invert": _invert_lut,
    "Posterize": _posterize_lut,
    "Solarize": _solarize_lut,
    "SolarizeAdd": _solarize_add_lut,
    "Contrast": _contrast_lut,
    "Brightness": _brightness_lut,
}


# --------------------------------------------------------------------------- colour: ops across channels / pixels


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x, out=x), 0, 255, out=x).astype(np.uint8)


def _blend(image: np.ndarray, degenerate: np.ndarray, factor: float) -> np.ndarray:
    """``degenerate + factor · (image - degenerate)`` (PIL's ImageEnhance), float32 in place on ``degenerate``."""
    degenerate += factor * (image - degenerate)
    return _to_uint8(degenerate)


def _color(x: np.ndarray, factor: float) -> np.ndarray:
    """Saturation: blend with the pixel's grey (PIL's ImageEnhance.Color)."""
    xf = x.astype(np.float32)
    grey = np.repeat((xf @ GREY.astype(np.float32))[..., None], 3, axis=-1)
    return _blend(xf, grey, factor)


def _sharpness(x: np.ndarray, factor: float) -> np.ndarray:
    """Blend with PIL's SMOOTH-filtered frame (kernel 1 1 1 / 1 5 1 / 1 1 1, over 13; borders kept)."""
    h, w = x.shape[1:3]
    if h < 3 or w < 3:
        return x
    xf = x.astype(np.float32)
    smooth = xf.copy()
    box = sum(xf[:, dy : h - 2 + dy, dx : w - 2 + dx] for dy in range(3) for dx in range(3))
    smooth[:, 1:-1, 1:-1] = (box + 4.0 * xf[:, 1:-1, 1:-1]) / 13.0
    return _blend(xf, smooth, factor)


# --------------------------------------------------------------------------- geometry


def _warp(x: np.ndarray, matrix: tuple[float, float, float, float, float, float]) -> np.ndarray:
    """Output pixel centre (X, Y) reads input pixel (aX + bY + c, dX + eY + f); outside: grey.

    One index map for the whole clip (nearest neighbour), so every frame moves alike.
    """
    t, h, w, c = x.shape
    index, outside = _index_map(h, w, matrix)
    out = x.reshape(t, h * w, c)[:, index].reshape(t, h, w, c)
    out[:, outside] = FILL
    return out


@functools.lru_cache(maxsize=256)  # a fixed magnitude gives each op two maps (one per sign) per frame size
def _index_map(
    h: int, w: int, matrix: tuple[float, float, float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    a, b, c0, d, e, f = matrix
    gy, gx = np.mgrid[0:h, 0:w] + 0.5
    u = np.floor(a * gx + b * gy + c0).astype(np.int64)
    v = np.floor(d * gx + e * gy + f).astype(np.int64)
    outside = (u < 0) | (u >= w) | (v < 0) | (v >= h)
    index = np.clip(v, 0, h - 1) * w + np.clip(u, 0, w - 1)
    return index.reshape(-1), outside


def _rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    h, w = x.shape[1:3]
    cy, cx = h / 2.0, w / 2.0
    rad = -math.radians(degrees)  # counter-clockwise on screen (y down), as PIL's Image.rotate
    cos, sin = math.cos(rad), math.sin(rad)
    # each output pixel reads the input rotated back about the centre
    return _warp(x, (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy))


def _shear_x(x: np.ndarray, factor: float) -> np.ndarray:
    return _warp(x, (1.0, factor, 0.0, 0.0, 1.0, 0.0))


def _shear_y(x: np.ndarray, factor: float) -> np.ndarray:
    return _warp(x, (1.0, 0.0, 0.0, factor, 1.0, 0.0))


def _translate_x(x: np.ndarray, fraction: float) -> np.ndarray:
    return _warp(x, (1.0, 0.0, fraction * x.shape[2], 0.0, 1.0, 0.0))


def _translate_y(x: np.ndarray, fraction: float) -> np.ndarray:
    return _warp(x, (1.0, 0.0, 0.0, 0.0, 1.0, fraction * x.shape[1]))


_APPLY: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {  # the ops that are not point ops
    "Rotate": _rotate,
    "Color": _color,
    "Sharpness": _sharpness,
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
}
