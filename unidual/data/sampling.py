"""Which native frame indices make a clip.

A clip is ``frames`` positions spaced ``step`` native frames apart, where
``step = stride`` or, with a target ``fps``, ``step = stride * native_fps / fps``.
Videos shorter than a clip are *looped* by default (indices wrap around, as if the
video played again); with ``loop=False`` they are *padded* by repeating the last frame.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def frame_step(stride: int, native_fps: float, fps: float | None) -> float:
    """Native frames between two consecutive clip frames."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if fps is None:
        return float(stride)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return stride * native_fps / fps


def clip_span(frames: int, step: float) -> int:
    """Native frames a clip covers from its first to its last frame, inclusive."""
    return int(math.floor((frames - 1) * step)) + 1


def clip_indices(start: float, frames: int, step: float, num_frames: int, loop: bool = True) -> list[int]:
    """Indices of one clip starting at ``start``; out-of-range positions wrap (loop) or clamp (pad)."""
    if num_frames < 1:
        raise ValueError("video has no frames")
    raw = [int(math.floor(start + k * step)) for k in range(frames)]
    if loop:
        return [i % num_frames for i in raw]
    return [min(i, num_frames - 1) for i in raw]


def random_clip(num_frames: int, frames: int, step: float, rng: random.Random, loop: bool = True) -> list[int]:
    """One clip at a uniformly random start (training)."""
    max_start = num_frames - clip_span(frames, step)
    start = rng.randint(0, max_start) if max_start > 0 else 0
    if max_start < 0 and loop:  # short video: start anywhere, the loop supplies the rest
        start = rng.randrange(num_frames)
    return clip_indices(start, frames, step, num_frames, loop)


def uniform_clips(num_frames: int, frames: int, step: float, num_clips: int, loop: bool = True) -> list[list[int]]:
    """``num_clips`` clips whose starts are spread evenly over the whole video (testing).

    Clip ``i`` starts at ``(i + 0.5) / num_clips`` of the admissible start range, so one
    clip is centred and the ends of the video are not over-represented.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    max_start = max(num_frames - clip_span(frames, step), 0)
    starts = [max_start * (i + 0.5) / num_clips for i in range(num_clips)]
    return [clip_indices(int(round(s)), frames, step, num_frames, loop) for s in starts]


def flatten(clips: Sequence[Sequence[int]]) -> list[int]:
    return [i for clip in clips for i in clip]
