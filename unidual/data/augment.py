"""Clip-consistent pixel augmentation on uint8 frames: RandAugment and colour jitter.

Every random choice (which ops, their signs, the jitter factors and their order) is drawn
once per clip by :func:`draw_randaugment` / :func:`draw_color_jitter`, and :func:`apply_ops`
applies that one list to the whole ``(T, 3, H, W)`` tensor: every frame gets the same
geometric warp (same index map) and the same colour mapping. Statistics that an op needs
(contrast's mean grey, autocontrast's range, equalize's histogram) are taken over the whole
clip, so one pixel value maps to one output value in every frame and motion is not turned
into flicker. An image is a one-frame clip, and then each op is PIL's / timm's op on it.

RandAugment follows timm's ``rand-m{M}-n{N}-inc1`` (what PySlowFast's ``AUG.AA_TYPE`` and
omnivision's configs use): ``N`` ops drawn with replacement from timm's 15, each applied with
probability 0.5, magnitude ``M`` on timm's 0-10 scale, the "increasing" variants (a larger M
is always a stronger change), geometric ops filled with grey 128, nearest-neighbour sampling
(timm picks bilinear/bicubic at random). No magnitude noise (timm's ``mstd``).

Colour jitter is PySlowFast's ``color_jitter`` / torchvision's ``ColorJitter(s, s, s)``:
brightness, contrast and saturation factors each uniform in ``[max(0, 1 - s), 1 + s]``, applied
in random order; no hue jitter.

All ops work on uint8 tensors with torch ops (blends go through float and round back).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

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


def draw_color_jitter(strength: float, rng: random.Random) -> list[Op]:
    """Brightness, contrast and saturation factors in ``[max(0, 1 - s), 1 + s]``, in random order."""
    if strength < 0:
        raise ValueError(f"color_jitter strength must be >= 0, got {strength}")
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    ops = [Op(name, rng.uniform(low, high)) for name in ("Brightness", "Contrast", "Color")]
    rng.shuffle(ops)
    return ops


def apply_ops(x: Tensor, ops: Sequence[Op]) -> Tensor:
    """uint8 ``(T, 3, H, W)`` -> the same shape and dtype with ``ops`` applied, in order, to every frame."""
    for op in ops:
        x = _APPLY[op.name](x, op.arg)
    return x


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


# --------------------------------------------------------------------------- colour


def _to_uint8(x: Tensor) -> Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _blend(x: Tensor, degenerate: Tensor | float, factor: float) -> Tensor:
    """PIL's ImageEnhance: ``degenerate + factor · (x - degenerate)``."""
    xf = x.float()
    return _to_uint8(xf.sub_(degenerate).mul_(factor).add_(degenerate))


def _grey(x: Tensor) -> Tensor:
    """ITU-R 601 luma (PIL's ``convert("L")``), ``(T, 1, H, W)`` float."""
    r, g, b = x[:, 0:1].float(), x[:, 1:2].float(), x[:, 2:3].float()
    return r * 0.299 + g * 0.587 + b * 0.114


def _brightness(x: Tensor, factor: float) -> Tensor:
    return _blend(x, 0.0, factor)


def _color(x: Tensor, factor: float) -> Tensor:
    return _blend(x, _grey(x), factor)


def _contrast(x: Tensor, factor: float) -> Tensor:
    return _blend(x, float(_grey(x).mean()), factor)  # one mean grey for the whole clip


def _sharpness(x: Tensor, factor: float) -> Tensor:
    t, c, h, w = x.shape
    if h < 3 or w < 3:
        return x
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    xf = x.float().reshape(t * c, 1, h, w)
    smooth = xf.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(xf, kernel.view(1, 1, 3, 3))  # borders kept, as PIL's SMOOTH filter
    return _blend(x, smooth.reshape(t, c, h, w), factor)


def _posterize(x: Tensor, bits: float) -> Tensor:
    b = int(bits)
    if b >= 8:
        return x
    return x & ((0xFF << (8 - b)) & 0xFF)


def _solarize(x: Tensor, threshold: float) -> Tensor:
    if threshold > 255:
        return x
    return torch.where(x >= int(threshold), x.bitwise_not(), x)


def _solarize_add(x: Tensor, add: float) -> Tensor:
    added = (x.to(torch.int16) + int(add)).clamp_(max=255).to(torch.uint8)
    return torch.where(x < 128, added, x)


def _invert(x: Tensor, _arg: float) -> Tensor:
    return x.bitwise_not()  # 255 - x on uint8


def _autocontrast(x: Tensor, _arg: float) -> Tensor:
    """Stretch each channel's range over the clip to [0, 255]; a flat channel is left alone."""
    low = x.amin(dim=(0, 2, 3), keepdim=True).float()
    high = x.amax(dim=(0, 2, 3), keepdim=True).float()
    flat = high <= low
    scale = torch.where(flat, torch.ones_like(high), 255.0 / (high - low).clamp(min=1.0))
    low = torch.where(flat, torch.zeros_like(low), low)
    return _to_uint8((x.float() - low) * scale)


def _equalize(x: Tensor, _arg: float) -> Tensor:
    """PIL's ``ImageOps.equalize`` per channel, with one histogram over the whole clip."""
    t, c, h, w = x.shape
    planes = x.permute(1, 0, 2, 3).reshape(c, -1).long()  # channel -> every pixel of the clip
    hist = torch.zeros(c, 256, dtype=torch.long).scatter_add_(1, planes, torch.ones_like(planes))
    last = 255 - (hist.flip(1) > 0).long().argmax(1, keepdim=True)  # last used grey level
    step = (hist.sum(1, keepdim=True) - hist.gather(1, last)) // 255
    before = hist.cumsum(1) - hist  # pixels strictly below each level
    lut = ((step // 2 + before) // step.clamp(min=1)).clamp_(max=255)
    identity = torch.arange(256).expand(c, 256)
    lut = torch.where(step > 0, lut, identity).to(torch.uint8)
    return lut.gather(1, planes).reshape(c, t, h, w).permute(1, 0, 2, 3)


# --------------------------------------------------------------------------- geometry


def _warp(x: Tensor, matrix: tuple[float, float, float, float, float, float]) -> Tensor:
    """Output pixel centre (X, Y) reads input pixel (aX + bY + c, dX + eY + f); outside: grey.

    One index map for the whole clip (nearest neighbour), so every frame moves alike.
    """
    t, c, h, w = x.shape
    a, b, c0, d, e, f = matrix
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    u = torch.floor(a * gx + b * gy + c0).long()
    v = torch.floor(d * gx + e * gy + f).long()
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    index = (v.clamp(0, h - 1) * w + u.clamp(0, w - 1)).reshape(-1)
    out = x.reshape(t, c, h * w).index_select(2, index).reshape(t, c, h, w)
    return out.masked_fill(~inside, FILL)


def _rotate(x: Tensor, degrees: float) -> Tensor:
    h, w = x.shape[-2:]
    cy, cx = h / 2.0, w / 2.0
    rad = -math.radians(degrees)  # counter-clockwise on screen (y down), as PIL's Image.rotate
    cos, sin = math.cos(rad), math.sin(rad)
    # each output pixel reads the input rotated back about the centre
    return _warp(x, (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy))


def _shear_x(x: Tensor, factor: float) -> Tensor:
    return _warp(x, (1.0, factor, 0.0, 0.0, 1.0, 0.0))


def _shear_y(x: Tensor, factor: float) -> Tensor:
    return _warp(x, (1.0, 0.0, 0.0, factor, 1.0, 0.0))


def _translate_x(x: Tensor, fraction: float) -> Tensor:
    return _warp(x, (1.0, 0.0, fraction * x.shape[-1], 0.0, 1.0, 0.0))


def _translate_y(x: Tensor, fraction: float) -> Tensor:
    return _warp(x, (1.0, 0.0, 0.0, 0.0, 1.0, fraction * x.shape[-2]))


_APPLY: dict[str, Callable[[Tensor, float], Tensor]] = {
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Invert": _invert,
    "Rotate": _rotate,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "SolarizeAdd": _solarize_add,
    "Color": _color,
    "Contrast": _contrast,
    "Brightness": _brightness,
    "Sharpness": _sharpness,
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
}
