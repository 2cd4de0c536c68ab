"""Spatial transforms of the paper's two protocols, on uint8 frames, plus image <-> clip helpers.

Protocol A (comparative study): resize every frame/image to 128x171, random 112x112
crop for training, centre crop for testing. Protocol B (R(2+1)D-152): shorter side
randomly 256 or 320, random 224 crop; testing videos: shorter side 256 and three
256x256 crops along the longer side; testing images: shorter side 256, centre 224.
One crop position and one flip decision is drawn per clip and used for all its frames.
Normalisation defaults to the ImageNet mean/std on [0, 1] pixels (the paper is silent).

Training recipe (off by default, docs/training.md "Recipe"): ``scale`` replaces the resize and
random crop with a random-resized crop (area fraction in ``scale``, aspect ratio in [3/4, 4/3],
torchvision's / PySlowFast's algorithm) to the plan's output size; ``randaugment`` and
``color_jitter`` run after the flip (:mod:`unidual.data.augment`, :mod:`unidual.data.jitter`). Like the crop, each is drawn
once per clip and applied to every frame alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unidual.data.augment import apply_ops, draw_randaugment
from unidual.data.jitter import apply_jitter, draw_color_jitter

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Plan:
    """A resolved transform for one modality and split."""

    resize: tuple[int, ...] | None  # (h, w) exact size; (s,) shorter side; None keeps the size
    scales: tuple[int, ...] = ()  # training: shorter side drawn from these (overrides resize)
    crop: int | None = None  # square crop side; None keeps the full frame
    crops: int = 1  # 1 = centre (or random in training), 3 = three crops along the longer side
    random_crop: bool = False
    flip: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    max_side: int | None = None  # frames with a longer side past this are scaled down first (bounded work)
    scale: tuple[float, float] | None = None  # random-resized crop: area fraction range (replaces resize + crop)
    randaugment: tuple[int, float] | None = None  # (n ops, magnitude 0-10), drawn once per clip
    color_jitter: float = 0.0  # brightness / contrast / saturation strength, drawn once per clip
    # False: views stay uint8 and are normalised where they are used (the trainer does it on the GPU:
    # a quarter of the bytes through pinned memory and PCIe, and no float work in the loader)
    normalise: bool = True


def to_tensor(frames: np.ndarray) -> Tensor:
    """``(T, H, W, 3)`` or ``(H, W, 3)`` uint8 -> ``(T, 3, H, W)`` uint8 view (channels-last storage, no copy)."""
    if frames.ndim == 3:
        frames = frames[None]
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """``(T, 3, H, W)`` -> resized; ``size`` is (h, w) or (shorter side,).

    Runs on uint8 pixels: torch's antialiased bilinear kernel for uint8 channels-last frames is
    ~10x faster than the float one (docs/performance.md) and differs by at most one grey level.
    """
    h, w = x.shape[-2:]
    oh, ow = target_size(h, w, size)
    if (oh, ow) == (h, w):
        return x
    return F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)


def target_size(height: int, width: int, size: Sequence[int]) -> tuple[int, int]:
    """(h, w) after :func:`resize` to ``size`` ((h, w), or (shorter side,) keeping the aspect ratio)."""
    if len(size) == 1:
        s = int(size[0])
        return (s, max(1, round(width * s / height))) if height <= width else (max(1, round(height * s / width)), s)
    return int(size[0]), int(size[1])


def _ensure_min(x: Tensor, side: int) -> Tensor:
    """Upscale so the shorter side is at least ``side`` (a crop never reads outside the frame)."""
    if min(x.shape[-2:]) < side:
        return resize(x, (side,))
    return x


def crop_at(x: Tensor, top: int, left: int, size: int) -> Tensor:
    return x[..., top : top + size, left : left + size]


def random_crop(x: Tensor, size: int, rng: random.Random) -> Tensor:
    x = _ensure_min(x, size)
    h, w = x.shape[-2:]
    return crop_at(x, rng.randint(0, h - size), rng.randint(0, w - size), size)


def resized_crop_box(
    height: int, width: int, scale: Sequence[float], rng: random.Random, ratio: Sequence[float] = (3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random-resized crop: torchvision's ``RandomResizedCrop.get_params`` rule.

    Ten tries at an area fraction uniform in ``scale`` and a log-uniform aspect ratio in ``ratio``;
    if none fits, the centre crop with the aspect ratio clamped to ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    aspect = width / height
    if aspect < min(ratio):
        w, h = width, round(width / min(ratio))
    elif aspect > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(x: Tensor, size: tuple[int, int], scale: Sequence[float], rng: random.Random) -> Tensor:
    """One random-resized crop of ``x`` (every frame the same box), resized to ``size`` on uint8 pixels."""
    top, left, h, w = resized_crop_box(x.shape[-2], x.shape[-1], scale, rng)
    return resize(x[..., top : top + h, left : left + w], size)


def output_size(plan: Plan, height: int, width: int) -> tuple[int, int]:
    """(h, w) a training view of this plan has: the crop, else the resize, else the frame's own size."""
    if plan.crop is not None:
        return plan.crop, plan.crop
    if plan.resize is not None:
        return target_size(height, width, plan.resize)
    return height, width


def centre_crop(x: Tensor, size: int) -> Tensor:
    x = _ensure_min(x, size)
    h, w = x.shape[-2:]
    return crop_at(x, (h - size) // 2, (w - size) // 2, size)


def three_crops(x: Tensor, size: int) -> list[Tensor]:
    """Start, centre and end crops along the longer side (fully-convolutional testing)."""
    x = _ensure_min(x, size)
    h, w = x.shape[-2:]
    if w >= h:
        top = (h - size) // 2
        return [crop_at(x, top, left, size) for left in (0, (w - size) // 2, w - size)]
    left = (w - size) // 2
    return [crop_at(x, top, left, size) for top in (0, (h - size) // 2, h - size)]


def normalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ``(T, 3, h, w)`` -> contiguous float ``(x / 255 - mean) / std``, converted once, after cropping."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0) - m) / s  # one copy


def bounded_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) scaled so the longer side is at most ``max_side`` (aspect ratio kept)."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def keeps_native_size(plan: Plan) -> bool:
    """A plan with neither resize nor crop: its cost grows with the file's pixel count."""
    return plan.resize is None and not plan.scales and plan.crop is None


def apply_plan(frames: np.ndarray, plan: Plan, rng: random.Random) -> list[Tensor]:
    """uint8 frames of one clip -> list of views, each ``(T, 3, h, w)`` normalised float (uint8 when
    ``plan.normalise`` is off).

    Pixels stay uint8 through resize, crop and flip; only the final views become float.
    """
    x = to_tensor(frames)
    height, width = x.shape[-2:]
    if plan.max_side is not None and max(height, width) > plan.max_side:
        x = resize(x, bounded_size(height, width, plan.max_side))
    views = _views(x, plan, rng)
    if plan.flip and rng.random() < 0.5:
        views = [v.flip(-1) for v in views]
    if plan.randaugment is not None or plan.color_jitter:
        views = [_augmented(v, plan, rng) for v in views]
    if not plan.normalise:
        return [v.contiguous() for v in views]
    return [normalise(v, plan.mean, plan.std) for v in views]


def normalise_batch(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """A uint8 batch ``(N, 3, H, W)`` / ``(N, 3, T, H, W)`` -> float ``(x / 255 - mean) / std`` where it lies.

    The same float32 operations in the same order as :func:`normalise`: equal values, bit for bit.
    """
    shape = (1, 3) + (1,) * (x.dim() - 2)
    m = torch.tensor(mean, dtype=torch.float32).view(shape).to(x.device, non_blocking=True)
    s = torch.tensor(std, dtype=torch.float32).view(shape).to(x.device, non_blocking=True)
    return (x.to(torch.float32).div_(255.0) - m) / s


def _views(x: Tensor, plan: Plan, rng: random.Random) -> list[Tensor]:
    """Resize + crop(s), or the random-resized crop of ``plan.scale``; uint8 ``(T, 3, h, w)`` each."""
    if plan.scale is not None:
        return [random_resized_crop(x, output_size(plan, *x.shape[-2:]), plan.scale, rng)]
    if plan.scales:
        x = resize(x, (rng.choice(plan.scales),))
    elif plan.resize is not None:
        x = resize(x, plan.resize)
    if plan.crop is None:
        views = [x]
    elif plan.random_crop:
        views = [random_crop(x, plan.crop, rng)]
    elif plan.crops == 3:
        views = three_crops(x, plan.crop)
    else:
        views = [centre_crop(x, plan.crop)]
    return views


def _augmented(x: Tensor, plan: Plan, rng: random.Random) -> Tensor:
    """RandAugment, then colour jitter (omnivision's order), each drawn once for the whole clip.

    Both run on the view's pixels as a ``(T, H, W, 3)`` numpy array (:mod:`unidual.data.augment`,
    :mod:`unidual.data.jitter`).
    """
    ops = draw_randaugment(*plan.randaugment, rng) if plan.randaugment is not None else []
    jitter = draw_color_jitter(plan.color_jitter, rng) if plan.color_jitter else None
    if not ops and jitter is None:
        return x
    pixels = apply_ops(np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1)), ops)
    return to_tensor(pixels if jitter is None else apply_jitter(pixels, jitter))
