"""Writing videos with PyAV (used by the built-in dataset generators and tests)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# container suffix -> (codec, pixel format) tried in order
_CODECS = {
    ".mp4": [("libx264", "yuv420p"), ("mpeg4", "yuv420p")],
    ".mkv": [("libx264", "yuv420p"), ("mpeg4", "yuv420p")],
    ".avi": [("mpeg4", "yuv420p")],
    ".webm": [("libvpx", "yuv420p")],
    ".gif": [("gif", "rgb8")],
}


def _pick_codec(suffix: str) -> tuple[str, str]:
    for codec, pix in _CODECS.get(suffix, _CODECS[".mp4"]):
        if codec in av.codecs_available:
            return codec, pix
    raise RuntimeError(f"no encoder available for {suffix} videos in this PyAV build")


def write_video(path: str | Path, frames: np.ndarray, fps: int = 8, quality: int = 18) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames; the container follows the suffix (mp4/mkv/avi/webm/gif)."""
    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape}")
    codec, pix = _pick_codec(path.suffix.lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = pix
        if codec == "libx264":
            stream.options = {"crf": str(quality), "preset": "veryfast", "tune": "zerolatency"}
        elif codec == "mpeg4":
            stream.options = {"qscale": "3"}
            stream.bit_rate = 2_000_000
        elif codec == "libvpx":
            stream.options = {"crf": "10", "b": "1M"}
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
