"""Mixup and CutMix inside one source's sub-batch, with the soft targets every loss term then uses.

Each source mixes only with itself (its examples, its classes), as omnivision's per-dataset
``CutMixUp``: images with images, clips with clips. timm's ``Mixup`` in ``batch`` mode is the
reference where the issue is silent: one λ per sub-batch drawn from Beta(α, α); with
probability ``mix_prob`` the sub-batch is mixed at all; with both switches on, CutMix is chosen
with probability ``switch_prob`` (0.5); each example is mixed with the one in the mirrored
position (``x.flip(0)``); CutMix's box has area ``(1 - λ)`` of the frame, is clipped at the
borders, and λ is then corrected to the area actually pasted. A clip ``(N, 3, T, H, W)`` gets
the same λ and the same box in every frame, so motion inside the box stays intact.

Targets are ``λ · one_hot(y) + (1 - λ) · one_hot(y mirrored)`` -- rows sum to 1. Label
smoothing is left to the loss (``F.cross_entropy(..., label_smoothing=ε)``), which on such a
target gives exactly timm's ``mixup_target(y, C, λ, ε)``: smoothing is linear, so smoothing
the mixed target equals mixing the smoothed one-hot targets.

Every random draw comes from a CPU ``torch.Generator`` (the trainer's, saved in checkpoints),
so a resumed run mixes exactly as the uninterrupted one and no device sync is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Mixed:
    """A mixed sub-batch: inputs, soft targets ``(N, C)``, the λ used and the CutMix box (or None)."""

    input: Tensor
    target: Tensor
    lam: float
    box: tuple[int, int, int, int] | None  # (top, bottom, left, right), rows/columns [top, bottom) x [left, right)


@dataclass(frozen=True)
class Mixer:
    """One source's ``transform.mixup`` / ``cutmix`` (Beta α, 0 = off) and ``mix_prob``."""

    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5  # both on: probability of CutMix instead of mixup (timm / PySlowFast default)

    def __post_init__(self) -> None:
        if self.mixup < 0 or self.cutmix < 0:
            raise ValueError(f"mixup / cutmix alphas must be >= 0, got {self.mixup}, {self.cutmix}")
        for name in ("mix_prob", "switch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.mix_prob > 0

    def __call__(self, x: Tensor, labels: Tensor, num_classes: int, generator: torch.Generator) -> Mixed:
        """Mix ``x`` (``(N,3,H,W)`` or ``(N,3,T,H,W)``) with its mirror; a skipped draw gives one-hot targets."""
        if x.dim() not in (4, 5) or len(x) != len(labels):
            raise ValueError(
                f"mix: expected (N,3,H,W) or (N,3,T,H,W) with N labels, got {tuple(x.shape)}, {len(labels)}"
            )
        lam, box = 1.0, None
        if self.active and _uniform(generator) < self.mix_prob:
            use_cutmix = self.cutmix > 0 and (self.mixup == 0 or _uniform(generator) < self.switch_prob)
            lam = _beta(self.cutmix if use_cutmix else self.mixup, generator)
            if use_cutmix:
                box = cutmix_box(x.shape[-2], x.shape[-1], lam, generator)
                top, bottom, left, right = box
                lam = 1.0 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])
        target = mix_targets(labels, num_classes, lam)
        if lam == 1.0:
            return Mixed(x, target, lam, box)
        mirror = x.flip(0)
        if box is None:
            mixed = x * lam + mirror * (1.0 - lam)
        else:
            top, bottom, left, right = box
            mixed = x.clone()
            mixed[..., top:bottom, left:right] = mirror[..., top:bottom, left:right]  # every frame: one box
        return Mixed(mixed, target, lam, box)


def mix_targets(labels: Tensor, num_classes: int, lam: float) -> Tensor:
    """``λ · one_hot(y) + (1 - λ) · one_hot(y.flip(0))``, float32 on the labels' device."""
    one_hot = F.one_hot(labels.long(), num_classes).float()
    return one_hot * lam + one_hot.flip(0) * (1.0 - lam)


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """timm's ``rand_bbox``: a box of side ratio ``sqrt(1 - λ)`` around a uniform centre, clipped to the frame."""
    ratio = float(np.sqrt(1.0 - lam))
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(0, height, (), generator=generator))
    cx = int(torch.randint(0, width, (), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def mix_sources(
    sub: Mapping[str, Mapping[str, Tensor]],
    mixers: Mapping[str, Mixer],
    num_classes: Mapping[str, int],
    generator: torch.Generator,
) -> dict[str, dict[str, Any]]:
    """The batch with every source that has an active :class:`Mixer` mixed, its soft targets under ``"target"``.

    Sources are visited in the batch's order, so the draws (and a resumed run's) are deterministic.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, part in sub.items():
        mixer = mixers.get(key)
        if mixer is None or not mixer.active or len(part["label"]) == 0:
            out[key] = dict(part)
            continue
        mixed = mixer(part["input"], part["label"], num_classes[key], generator)
        out[key] = {**part, "input": mixed.input, "target": mixed.target}
    return out


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _beta(alpha: float, generator: torch.Generator) -> float:
    """One Beta(α, α) draw, seeded from ``generator`` (torch's Beta sampler takes no generator)."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))
