"""Checking one file: is it readable, how long is it -- fast (container index) or deep (every frame).

Fast mode reads a video's header and demuxes every packet of its video stream without
decoding (decoding only enough packets for the first frame, which proves the codec
opens). A header frame count beyond the packets actually stored, or a video stream
ending well before the container's duration, is the mark of a truncated download; deep
mode finds the same files by decoding every frame. Images: fast mode decodes JPEGs at
1/8 scale (PIL draft), which still reads every entropy-coded byte, so truncation shows.

Every function returns a plain dict (``path``, ``error`` or None, ``notes``, sizes), so
results cross process boundaries of ``data check --workers``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import av

from unidual.data import archive as archive_mod
from unidual.data.budget import decode_budget
from unidual.data.decode import load_image, open_image
from unidual.data.errors import DataError

#: Header frame counts are sometimes a frame or two high; a larger deficit means lost frames.
FRAME_SLACK = 2
#: Without a header count (mkv, webm) the video must reach this share of the container's duration ...
END_SHARE = 0.9
#: ... or end at most this many seconds early (audio may run a little longer than the video).
END_SLACK_S = 1.0
MIN_IMAGE_SIDE = 8


def _result(path: str, **kw: Any) -> dict[str, Any]:
    return {"path": path, "error": None, "notes": [], **kw}


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _decodes_a_frame(path: str) -> bool:
    with av.open(path, mode="r") as container:
        return next(iter(container.decode(video=0)), None) is not None


def inspect_video(path: str, deep: bool = False) -> dict[str, Any]:
    """Header + packet index (fast) or every decoded frame (deep) of one video."""
    out = _result(path)
    if not os.path.isfile(path):
        return {**out, "error": "file not found"}
    if os.path.getsize(path) == 0:
        return {**out, "error": "empty file (0 bytes)"}
    try:
        container = av.open(path, mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        return {**out, "error": f"not a readable video ({exc})"}
    try:
        if not container.streams.video:
            return {**out, "error": "no video stream"}
        stream = container.streams.video[0]
        header = int(stream.frames or 0)
        fps = _fps(stream)
        out.update(fps=fps, width=stream.codec_context.width, height=stream.codec_context.height)
        try:
            decode_budget().check_declared(path, out["width"], out["height"])  # before the first frame decodes
        except DataError as exc:
            return {**out, "error": str(exc).replace(f"{path}: ", "", 1)}
        counted, end, first_frame = 0, 0.0, False
        try:
            if deep:
                for frame in container.decode(stream):
                    counted += 1
                    if frame.time is not None:
                        end = max(end, frame.time + (1.0 / fps if fps else 0.0))
                first_frame = counted > 0
            else:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue  # the demuxer's flush packet
                    counted += 1
                    if packet.pts is not None and packet.time_base is not None:
                        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                    if counted == 1:  # the first packet alone, drained: one frame, not the B-frame delay's three
                        first_frame = bool(packet.decode()) or bool(stream.codec_context.decode(None))
                if counted and not first_frame:  # a stream that does not start on a keyframe: decode properly
                    first_frame = _decodes_a_frame(path)
        except (av.FFmpegError, OSError, ValueError) as exc:
            what = "decoded frames" if deep else "packets"
            return {**out, "frames": counted, "error": f"unreadable after {counted} {what} ({exc})"}
        if counted == 0:
            return {**out, "error": "video has no frames"}
        if not first_frame:
            return {**out, "frames": counted, "error": "no frame decodes (codec cannot read the stream)"}
        if header and counted < header - FRAME_SLACK:
            what = "frames decode" if deep else "packets are stored"
            return {**out, "frames": counted, "error": f"truncated: header says {header} frames, only {counted} {what}"}
        total = (container.duration or 0) / 1_000_000
        if not header and total and end < min(total * END_SHARE, total - END_SLACK_S):
            return {
                **out,
                "frames": counted,
                "error": f"truncated: video stream ends at {end:.2f} s, the container says {total:.2f} s",
            }
        duration = (
            float(stream.duration * stream.time_base)
            if stream.duration and stream.time_base
            else (total or (counted / fps if fps else 0.0))
        )
        out.update(frames=counted, duration=round(duration, 3))
        return out
    finally:
        container.close()


def _open_bytes(path: str) -> bytes:
    if archive_mod.SEP in path:
        archive, member = path.split(archive_mod.SEP, 1)
        return archive_mod.open_archive(archive).read(member)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    return Path(path).read_bytes()


def inspect_image(path: str, deep: bool = False) -> dict[str, Any]:
    """Decode one image: fully (deep, the training reader) or JPEGs at 1/8 scale (fast)."""
    out = _result(path)
    try:
        data = _open_bytes(path)
        if deep or not data:
            img = load_image(data, name=path)
            width, height = img.size
        else:
            with open_image(io.BytesIO(data), path) as img:
                width, height = img.size
                img.draft("RGB", (max(width // 8, 1), max(height // 8, 1)))  # JPEG only; a no-op otherwise
                img.load()
    except DataError as exc:
        return {**out, "error": str(exc).replace(f"{path}: ", "", 1)}
    except Exception as exc:
        return {**out, "error": f"not a readable image ({type(exc).__name__}: {exc})"}
    out.update(width=width, height=height)
    if min(width, height) < MIN_IMAGE_SIDE:
        out["notes"].append(f"tiny image {width}x{height}")
    return out


def inspect_rawframes(
    path: str, frames: int, filename_tmpl: str, start_index: int, deep: bool = False
) -> dict[str, Any]:
    """A raw-frame folder: every listed frame file present (fast: first one decoded; deep: all)."""
    out = _result(path, fps=None)
    names = [os.path.join(path, filename_tmpl.format(i + start_index)) for i in range(frames)]
    absent = [n for n in names if not os.path.isfile(n)]
    if absent:
        return {**out, "error": f"{len(absent)} of {frames} frame files missing (first: {Path(absent[0]).name})"}
    for name in names if deep else names[:1]:
        one = inspect_image(name, deep=True)
        if one["error"]:
            return {**out, "error": f"{Path(name).name}: {one['error']}"}
    return {**out, "frames": frames}


def inspect(task: tuple[str, str, bool, dict[str, Any] | None]) -> dict[str, Any]:
    """``(path, modality, deep, raw-frame options or None)`` -> result; the unit of work of ``data check``."""
    path, modality, deep, raw = task
    try:
        if raw is not None:
            return inspect_rawframes(path, deep=deep, **raw)
        return inspect_video(path, deep) if modality == "video" else inspect_image(path, deep)
    except Exception as exc:
        return _result(path, error=f"{type(exc).__name__}: {exc}")
