"""Reading pixels: PyAV video decoding (seek + decode forward) and robust image opening.

Containers are opened per call and closed before returning, so nothing here holds a
file handle across calls; that keeps the functions safe in DataLoader worker processes.
"""

from __future__ import annotations

import bisect
import io
import math
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union, cast

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageOps

from unidual.data.budget import BUDGET_NOTE, DeclaredSizeError, DecodeBudget, decode_budget
from unidual.data.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".gif", ".mpg", ".mpeg", ".ogv")

#: Images declaring more pixels than this are refused (decompression-bomb guard); see unidual.data.budget.
MAX_IMAGE_PIXELS = DecodeBudget.max_declared_pixels

# Image formats FFmpeg also opens (as one-frame videos): their headers are read with Pillow first.
_STILL_FORMATS = ("PNG", "GIF", "JPEG", "BMP", "WEBP", "TIFF", "PPM")

# Below this many seconds into the video we decode from the start instead of seeking.
_SEEK_THRESHOLD_S = 0.5
# Frames decoded past the last wanted one, to catch frames emitted out of display order.
_REORDER_SLACK = 3


@dataclass(frozen=True)
class VideoInfo:
    """What a clip sampler needs to know about a video."""

    num_frames: int
    fps: float
    duration: float  # seconds
    width: int
    height: int


# --------------------------------------------------------------------------- video


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    _check_still_image_header(path)
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable video ({exc})") from exc


def _check_still_image_header(path: Path) -> None:
    """The declared size of a file Pillow recognises (PNG, GIF, JPEG, ...), checked before PyAV opens it:
    ``av.open`` decodes an image file's first frame while probing its stream, at full size."""
    try:
        with open(path, "rb") as fp:
            open_image(fp, path, formats=_STILL_FORMATS).close()
    except DeclaredSizeError:
        raise
    except DataError:
        return  # not an image format Pillow knows (a video): PyAV's header check in _video_stream applies


def _video_stream(container, path: str | Path):
    if not container.streams.video:
        raise DataError(f"{path}: no video stream")
    # Single-threaded decoding on purpose: clips are a few small frames and DataLoader
    # workers already run in parallel. PyAV's default (slice threads, count 0 = one per core)
    # starts a thread pool at every open: that halved the clip rate of prepared 128-px videos.
    stream = container.streams.video[0]
    if stream.codec_context is None:  # a corrupt header naming no codec FFmpeg knows
        raise DataError(f"{path}: video stream has no decodable codec")
    stream.thread_count = 1
    decode_budget().check_declared(path, stream.codec_context.width, stream.codec_context.height)
    return stream


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    return fps if math.isfinite(fps) and fps > 0 else 25.0


def _probe_open(container, path: str | Path) -> tuple[VideoInfo, bool]:
    """Info of an open container, and whether counting packets used up its demuxer."""
    stream = _video_stream(container, path)
    fps = _stream_fps(stream)
    frames = int(stream.frames or 0)
    counted = frames <= 0
    if counted:  # mkv/webm/gif headers often carry no count: demux (no decoding) and count
        try:
            frames = sum(1 for p in container.demux(stream) if p.size > 0)
        except av.FFmpegError as exc:
            raise DataError(f"{path}: cannot read packets ({exc})") from exc
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        duration = frames / fps
    if frames <= 0:
        raise DataError(f"{path}: video has no frames")
    width, height = stream.codec_context.width, stream.codec_context.height
    return VideoInfo(num_frames=frames, fps=fps, duration=duration, width=width, height=height), counted


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, frame rate, duration and size; counts packets when the header has no count."""
    container = _open(path)
    try:
        return _probe_open(container, path)[0]
    finally:
        container.close()


_local = threading.local()


def _rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """A decoded frame as ``(H, W, 3)`` uint8 RGB (``size`` = (w, h) to scale it to on the way),
    through one single-threaded swscale context per thread.

    ``_rgb(frame)`` builds a new swscale context (with its own thread
    pool) for every frame, which cost two thirds of loading a small clip. One reused
    context, kept single-threaded, is ~4x faster on 32-px frames and gives the same bytes;
    without threads it is also safe to inherit across a DataLoader fork (a threaded one
    deadlocked the forked workers).
    """
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = VideoReformatter()
    if size is None:
        return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
    width, height = size
    return reformatter.reformat(
        frame, width=width, height=height, format="rgb24", interpolation="AREA", threads=1
    ).to_ndarray()


_Held = Union[av.VideoFrame, np.ndarray]  # a decoded frame, or already RGB  # noqa: UP007


class _Converter:
    """Decoded frames -> RGB within the decode budget, for one read of ``count`` distinct frames.

    A frame within the budget is kept as the decoder's frame and converted only if it is used
    (the common case: most decoded frames are not). A frame past it is converted at once, at
    the reduced size, so no full-size copy of a huge frame is ever held or made.
    """

    def __init__(self, path: str | Path, count: int, budget: DecodeBudget | None = None) -> None:
        self.path, self.count, self.budget = path, count, budget or decode_budget()

    def hold(self, frame: av.VideoFrame) -> _Held:
        self.budget.check_declared(self.path, frame.width, frame.height)  # a header that understated the size
        size = self.budget.frame_size(frame.width, frame.height, self.count)
        return frame if size is None else _rgb(frame, size)

    @staticmethod
    def rgb(held: _Held) -> np.ndarray:
        return held if isinstance(held, np.ndarray) else _rgb(held)


def _frame_index(frame, start: float, fps: float) -> int:
    t = frame.time if frame.time is not None else 0.0
    return int(round((t - start) * fps))


def _decode_range(
    container, stream, wanted: Sequence[int], fps: float, seek: bool, path: str | Path = "video"
) -> dict[int, np.ndarray]:
    """The frame shown at each native index of ``wanted`` (sorted, unique), in one forward decode.

    Frames are decoded from the keyframe before ``wanted[0]`` to ``wanted[-1]``, but only the
    ones some wanted index shows are kept and converted to RGB: the ten clips of a test video
    span the whole file, and converting every frame of an 18-s 720p video cost more than
    decoding it (and 2.7 GB). A wanted index without a frame of its own takes the last frame
    before it (variable frame rate; past the decodable end: the last frame).
    """
    first, last = wanted[0], wanted[-1]
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if seek:
        target = start + first / fps
        container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
    convert = _Converter(path, len(wanted))
    exact: dict[int, _Held] = {}  # wanted index -> its frame
    latest: dict[int, tuple[int, _Held]] = {}  # next wanted index -> the latest frame before it, not wanted itself
    wanted_set = set(wanted)
    lowest: tuple[int, _Held] | None = None
    overrun = 0
    for counter, frame in enumerate(container.decode(stream)):
        index = _frame_index(frame, start, fps) if frame.time is not None else counter
        if seek and counter == 0 and index > first:
            raise _SeekOvershoot()
        held: _Held | None = None
        if index in wanted_set:
            exact[index] = held = convert.hold(frame)
            latest.pop(index, None)  # an exact frame is always the one shown
        elif index < last:
            gap = wanted[bisect.bisect_right(wanted, index)]  # the next wanted index after this frame
            if gap not in exact and (gap not in latest or latest[gap][0] < index):
                latest[gap] = (index, held := convert.hold(frame))
        if lowest is None or index < lowest[0]:
            # for wanted indices before every frame (a stream starting late)
            lowest = (index, held if held is not None else convert.hold(frame))
        if index >= last:
            overrun += 1  # some codecs (mpeg4 in AVI) emit frames slightly out of display order
            if overrun > _REORDER_SLACK:
                break
    if lowest is None:
        return {}
    kept = {lowest[0]: lowest[1], **{i: f for i, f in latest.values()}, **exact}
    available = sorted(kept)
    out: dict[int, np.ndarray] = {}
    converted: dict[int, np.ndarray] = {}
    for i in wanted:
        pos = bisect.bisect_right(available, i) - 1
        source = available[max(pos, 0)]
        if source not in converted:
            converted[source] = convert.rgb(kept[source])
        out[i] = converted[source]
    return out


class _SeekOvershoot(Exception):
    pass


def read_frames(path: str | Path, indices: Sequence[int], info: VideoInfo | None = None) -> np.ndarray:
    """The frames at native ``indices`` as a ``(T, H, W, 3)`` uint8 array.

    Seeks to the keyframe before the first wanted frame and decodes forward only up
    to the last one. Each index takes the frame on screen at that time, so gaps of a
    variable frame rate repeat the previous frame and an index past the decodable end
    repeats the last one (header frame counts are sometimes slightly too high).
    """
    return cast(np.ndarray, _collect(path, indices, info or probe_video(path)))  # stacked by default


def read_clip(
    path: str | Path,
    choose: Callable[[VideoInfo], Sequence[int]],
    info: VideoInfo | None = None,
    *,
    stacked: bool = True,
) -> tuple[VideoInfo, list[int], np.ndarray | list[np.ndarray]]:
    """Probe, pick the frames from what the probe says, decode them: ``(info, indices, frames)``.

    The same as ``probe_video`` + ``read_frames`` but opening the file once, which is a quarter
    of the cost of reading a short clip the first time (a data loader's first epoch).
    ``stacked=False`` returns the frames as a list: a caller that regroups them into clips
    (the ten test clips of a 720p video are 220 MB) saves a copy that cost more than decoding.
    """
    container: av.container.InputContainer | None = _open(path)
    try:
        if info is None:
            assert container is not None
            info, counted = _probe_open(container, path)
            if counted:  # the demuxer is at the end: decode from a fresh open
                container.close()
                container = None
        indices = [int(i) for i in choose(info)]
        return info, indices, _collect(path, indices, info, container, stacked)
    finally:
        if container is not None:
            container.close()


def _collect(
    path: str | Path, indices: Sequence[int], info: VideoInfo, container=None, stacked: bool = True
) -> np.ndarray | list[np.ndarray]:
    """Decode the frames at ``indices``, using ``container`` (left open) for the first attempt if given."""
    if len(indices) == 0:
        raise ValueError("read_frames needs at least one index")
    wanted = sorted({int(i) for i in indices})
    seek = wanted[0] / info.fps > _SEEK_THRESHOLD_S
    frames: dict[int, np.ndarray] = {}
    for attempt, attempt_seek in enumerate((True, False) if seek else (False,)):
        current = container if attempt == 0 and container is not None else _open(path)
        try:
            stream = _video_stream(current, path)
            frames = _decode_range(current, stream, wanted, info.fps, attempt_seek, path)
            break
        except _SeekOvershoot:
            continue  # the seek landed after the wanted frame: decode from the start instead
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise DataError(f"{path}: decoding failed ({exc})") from exc
        finally:
            if current is not container:
                current.close()
    if not frames:
        raise DataError(f"{path}: no decodable frames (header says {info.num_frames})")
    picked = [frames[int(i)] for i in indices]
    return np.stack(picked) if stacked else picked


def read_video(path: str | Path) -> np.ndarray:
    """Every frame in display order, decoded from the start (``(T, H, W, 3)`` uint8); for checks and benchmarks."""
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        convert = _Converter(path, max(int(stream.frames or 0), 1))
        decoded = [
            (f.pts if f.pts is not None else i, convert.rgb(convert.hold(f)))
            for i, f in enumerate(container.decode(stream))
        ]
        frames = [rgb for _, rgb in sorted(decoded, key=lambda pair: pair[0])]  # display order
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{path}: decoding failed ({exc})") from exc
    finally:
        container.close()
    if not frames:
        raise DataError(f"{path}: video has no frames")
    return np.stack(frames)


# --------------------------------------------------------------------------- images


def _to_8bit_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; alpha is composited over white, 16/32-bit and float are rescaled."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if img.mode == "F" and arr.max(initial=0) <= 1.0:
            hi = 1.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    return img


def _reduced(img: Image.Image, max_pixels: int) -> Image.Image:
    """``img`` box-reduced by the smallest integer factor that brings it within ``max_pixels``."""
    factor = math.ceil(math.sqrt(img.width * img.height / max_pixels))
    if factor <= 1:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # modes reduce() does not take (P, 1, I;16): to RGB(A) first
        return _to_8bit_rgb(img).reduce(factor)


def load_image(
    source: str | Path | bytes | BinaryIO, name: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> Image.Image:
    """Open an image file (or its bytes) as an upright RGB PIL image, within the decode budget.

    EXIF orientation is applied; every mode becomes 8-bit RGB. Images declaring more than
    ``max_pixels`` (or the budget's ``max_declared_pixels``) are refused before their pixels
    are decoded; larger than the budget's ``max_frame_pixels``, they come back reduced
    (JPEGs decoded at a reduced scale, others box-reduced before any mode conversion).
    """
    label = name or str(source if isinstance(source, (str, Path)) else "<bytes>")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{label}: file not found")
        if path.stat().st_size == 0:
            raise DataError(f"{label}: empty file (0 bytes)")
        fp: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by the caller of this helper
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise DataError(f"{label}: empty file (0 bytes)")
        fp = io.BytesIO(bytes(source))
    else:
        fp = source
    budget = decode_budget()
    try:
        with fp:
            img = open_image(fp, label, max_pixels)
            size = budget.frame_size(*img.size)
            if size is not None:
                img.draft("RGB", size)  # JPEG: decoded at 1/2 .. 1/8 scale, still at least ``size``
            img.load()
            img = _reduced(img, budget.max_frame_pixels)
            img = ImageOps.exif_transpose(img)
            return _to_8bit_rgb(img)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as exc:
        raise DataError(f"{label}: not a readable image ({exc})") from exc


def open_image(
    fp: BinaryIO, label: object, max_pixels: int = MAX_IMAGE_PIXELS, formats: tuple[str, ...] | None = None
) -> Image.Image:
    """``Image.open`` (header only) of an image within the decode budget's declared size, else DataError."""
    limit = min(max_pixels, decode_budget().max_declared_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            img = Image.open(fp, formats=formats)
    except Image.DecompressionBombError as exc:  # Pillow's own guard (twice its limit) fired first
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"of {found.group(1)} pixels" if found else f"({exc})"
        raise DeclaredSizeError(
            f"{label}: declared size {declared} is above the limit of {limit} {BUDGET_NOTE}"
        ) from exc
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as exc:
        raise DataError(f"{label}: not a readable image ({exc})") from exc
    w, h = img.size
    decode_budget().check_declared(label, w, h, max_pixels)
    if w == 0 or h == 0:
        raise DataError(f"{label}: image has zero size {w}x{h}")
    return img


def image_array(img: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 view of an RGB image."""
    return np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy needs one)
