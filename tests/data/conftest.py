from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unidual.data.encode import write_video


def counter_frames(n: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Frame t is a flat image whose red channel encodes t (red = 10 * t), so decoded frames can be identified."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = min(10 * t, 255)
        frames[t, ..., 1] = 128
    return frames


def frame_ids(frames: np.ndarray) -> list[int]:
    return [int(round(float(f[..., 0].mean()) / 10)) for f in frames]


@pytest.fixture
def make_video(tmp_path: Path):
    def make(name: str = "v.mp4", n: int = 20, fps: int = 10, h: int = 32, w: int = 48) -> Path:
        return write_video(tmp_path / name, counter_frames(n, h, w), fps=fps)

    return make
