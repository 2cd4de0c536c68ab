"""A file as the views a model sees: the one path from decoded frames to view tensors.

The datasets (training and test splits), ``unidual predict`` and ``unidual visualize`` all
turn a video's decoded frames into clip views here, and a whole file into its test views,
so a file predicted on its own is preprocessed exactly like the same file in ``eval``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unidual.data import sampling
from unidual.data.decode import VideoInfo, image_array, load_image, read_clip
from unidual.data.transforms import Plan, apply_plan, keeps_native_size


def clip_views(
    frames: Mapping[int, np.ndarray], clips: Sequence[Sequence[int]], plan: Plan, rng: random.Random
) -> Tensor:
    """Decoded frames (native index -> HxWx3 uint8) of ``clips`` as views ``(V, 3, T, H, W)``, clip-major."""
    views: list[Tensor] = []
    for clip in clips:
        views += apply_plan(np.stack([frames[i] for i in clip]), plan, rng)
    return torch.stack([v.permute(1, 0, 2, 3) for v in views])


def file_views(path: str | Path, modality: str, spec: Any, max_side: int | None = None) -> Tensor:
    """A file as test views: image ``(V, 3, H, W)``, video ``(V, 3, T, H, W)`` (V = clips x crops).

    ``spec`` is the source spec whose test transform and clip sampling apply. ``max_side``
    bounds the work when that transform keeps the native size (a 9000-px image is shrunk
    first); None leaves such files as they are.
    """
    plan = spec.transform.plan(modality, "test")
    native = keeps_native_size(plan) and plan.max_side is None
    if native and max_side is not None:
        plan = dataclasses.replace(plan, max_side=max_side)
    rng = random.Random(0)  # test plans are deterministic; rng is only a required argument
    if modality == "image":
        img = load_image(path)
        if native and max_side is not None and max(img.size) > max_side:
            img.thumbnail((max_side, max_side))  # Pillow's reducing resize: little memory, aspect kept
        return torch.stack([v[0] for v in apply_plan(image_array(img), plan, rng)])
    c = spec.clip
    clips: list[list[int]] = []

    def choose(info: VideoInfo) -> list[int]:
        step = sampling.frame_step(c.stride, info.fps, c.fps)
        clips.extend(sampling.uniform_clips(info.num_frames, c.frames, step, c.num_clips, c.loop))
        return sorted(set(sampling.flatten(clips)))

    _, wanted, frames = read_clip(path, choose, stacked=False)
    return clip_views(dict(zip(wanted, frames)), clips, plan, rng)
