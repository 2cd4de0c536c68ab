"""``unidual data prepare``: re-encode a video dataset for training, into a mirror tree.

Real clips (720p-1080p H.264, a keyframe every ~128 frames) make every random clip read
seek to a keyframe far back and decode up to 128 full-size frames. Re-encoded to a small
short side with a keyframe every 16 frames, a clip read decodes a few small frames: the
step mmaction2 and PySlowFast tell their users to do by hand with ffmpeg.

Each video becomes ``DST/<same relative path>.mp4`` (``x_avi.mp4`` when an ``x.mp4`` sits
beside ``x.avi``): H.264 (libx264, preset veryfast, crf 23, yuv420p), short side ``N``
(never upscaled; the other side keeps the aspect ratio, rounded to even), at most ``K``
frames between keyframes, the source's frames at its average rate, no audio. Images are
copied, or resized to short side ``N`` with ``images=True``. List and CSV files (``.txt``,
``.csv``) are copied with video names rewritten to ``.mp4``, so the same lists and Kinetics
CSVs describe the new tree. Outputs are written under a temporary name and renamed when
complete: a second run skips what is done (resumable). Unreadable files are listed in
``DST/prepare_unreadable.txt`` and skipped.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image
from tqdm import tqdm

from unidual.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, load_image
from unidual.data.errors import DataError

LIST_EXTENSIONS = (".txt", ".csv")
UNREADABLE = "prepare_unreadable.txt"
# video names in list lines: a non-space run ending in a video extension (gif is an image too: left alone)
_VIDEO_NAME = re.compile(
    r"(\S+?)\.(" + "|".join(e.lstrip(".") for e in VIDEO_EXTENSIONS if e != ".gif") + r")\b", re.IGNORECASE
)


@dataclass(frozen=True)
class PrepareOptions:
    short_side: int
    keyframe_interval: int = 16
    images: bool = False  # resize images too (otherwise they are copied)
    crf: int = 23
    preset: str = "veryfast"


def _target_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(w, h) with the shorter side ``short`` (never upscaled), both even for yuv420p."""
    scale = min(1.0, short / min(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.stem}.part{path.suffix}")


def encode_video(src: Path, dst: Path, opts: PrepareOptions) -> None:
    """Re-encode one video (video stream only) to ``dst``; raises DataError if it cannot be read."""
    tmp = _tmp(dst)
    try:
        with av.open(str(src)) as source:
            if not source.streams.video:
                raise DataError(f"{src}: no video stream")
            stream = source.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            width, height = _target_size(stream.codec_context.width, stream.codec_context.height, opts.short_side)
            count = 0
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                video = out.add_stream("libx264", rate=rate)
                video.width, video.height, video.pix_fmt = width, height, "yuv420p"
                k = str(opts.keyframe_interval)
                # at most K frames between keyframes; x264 may add one at a scene cut (a seek point too)
                video.options = {"preset": opts.preset, "crf": str(opts.crf), "g": k}
                for frame in source.decode(stream):
                    small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
                    small.pts, small.time_base = count, 1 / rate
                    count += 1
                    for packet in video.encode(small):
                        out.mux(packet)
                for packet in video.encode():
                    out.mux(packet)
        if count == 0:
            raise DataError(f"{src}: video has no frames")
        tmp.replace(dst)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{src}: not a readable video ({exc})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def resize_image(src: Path, dst: Path, opts: PrepareOptions) -> None:
    """An image with its shorter side at most ``short_side``, in its own format."""
    img = load_image(src)
    size = _target_size(*img.size, opts.short_side) if min(img.size) > opts.short_side else img.size
    tmp = _tmp(dst)
    try:
        img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0).save(
            tmp, format=Image.registered_extensions().get(dst.suffix.lower(), "PNG"), quality=90
        )
        tmp.replace(dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def video_target(rel: Path, clashes: set[str]) -> Path:
    """``a/x.avi`` -> ``a/x.mp4``; ``a/x_avi.mp4`` when ``a/x.mp4`` is a source video too (``clashes``)."""
    if rel.suffix.lower() != ".mp4" and rel.as_posix() in clashes:
        return rel.with_name(f"{rel.stem}_{rel.suffix.lower().lstrip('.')}.mp4")
    return rel.with_suffix(".mp4")


def rewrite_list(src: Path, dst: Path, clashes: set[str] = frozenset()) -> None:
    """A list/CSV file with every video name's extension changed to ``.mp4`` (as ``video_target`` names them)."""

    def new_name(match: re.Match) -> str:
        name = match.group(0)
        clash = any(c == name or c.endswith("/" + name) for c in clashes)
        return f"{match.group(1)}_{match.group(2).lower()}.mp4" if clash else f"{match.group(1)}.mp4"

    dst.write_text(_VIDEO_NAME.sub(new_name, src.read_text()))


def _job(task: tuple[str, str, str, PrepareOptions]) -> tuple[str, str, str | None]:
    """``(kind, src, dst, options)`` -> ``(status, src, reason)``; the unit of work of the process pool."""
    kind, src, dst, opts = task
    target = Path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "video":
            encode_video(Path(src), target, opts)
        elif kind == "image":
            resize_image(Path(src), target, opts)
        else:
            shutil.copy2(src, target)
    except DataError as exc:
        return "unreadable", src, str(exc).replace(f"{src}: ", "", 1)
    except Exception as exc:
        return "unreadable", src, f"{type(exc).__name__}: {exc}"
    return "done", src, None


def _clashes(rels: list[Path]) -> set[str]:
    """Non-mp4 videos whose ``.mp4`` name another source video already has (``x.avi`` beside ``x.mp4``)."""
    names = {r.as_posix().lower() for r in rels}
    return {
        r.as_posix() for r in rels if r.suffix.lower() != ".mp4" and r.with_suffix(".mp4").as_posix().lower() in names
    }


def plan(src: Path, dst: Path, opts: PrepareOptions) -> tuple[list[tuple], list[tuple[Path, Path]], int, set[str]]:
    """(media jobs still to do, list files to rewrite, media files already done, renamed clashes) of a mirror."""
    jobs, lists, done = [], [], 0
    files = [p for p in sorted(src.rglob("*")) if p.is_file()]
    inside = dst.resolve().is_relative_to(src.resolve())
    files = [p for p in files if not (inside and p.resolve().is_relative_to(dst.resolve()))]  # DST is no input
    is_video = [p.suffix.lower() in VIDEO_EXTENSIONS and p.suffix.lower() != ".gif" for p in files]
    clashes = _clashes([p.relative_to(src) for p, v in zip(files, is_video) if v])
    for path, video in zip(files, is_video):
        rel = path.relative_to(src)
        suffix = path.suffix.lower()
        if video:
            kind, target = "video", dst / video_target(rel, clashes)
        elif suffix in IMAGE_EXTENSIONS:
            kind, target = ("image" if opts.images else "copy"), dst / rel
        elif suffix in LIST_EXTENSIONS:
            lists.append((path, dst / rel))
            continue
        else:
            continue
        if target.exists():
            done += 1
        else:
            jobs.append((kind, str(path), str(target), opts))
    return jobs, lists, done, clashes


def prepare_dataset(
    src: str | Path, dst: str | Path, opts: PrepareOptions, workers: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Mirror ``src`` into ``dst`` (see the module doc); returns counts and the unreadable files."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"{src}: source folder not found")
    if src.resolve() == dst.resolve():
        raise DataError(f"{dst}: the destination must differ from the source")
    if opts.short_side < 2 or opts.keyframe_interval < 1:
        raise DataError("--short-side must be >= 2 and --keyframe-interval >= 1")
    jobs, lists, done, clashes = plan(src, dst, opts)
    dst.mkdir(parents=True, exist_ok=True)
    bad: list[tuple[str, str]] = []
    bar = tqdm(total=len(jobs), unit="file", desc="prepare", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    with bar:
        if workers > 1 and len(jobs) > 1:
            with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                for status, path, reason in pool.imap_unordered(_job, jobs):
                    if status != "done":
                        bad.append((path, reason or ""))
                    bar.update()
        else:
            for job in jobs:
                status, path, reason = _job(job)
                if status != "done":
                    bad.append((path, reason or ""))
                bar.update()
    for list_src, list_dst in lists:
        list_dst.parent.mkdir(parents=True, exist_ok=True)
        rewrite_list(list_src, list_dst, clashes)
    bad.sort()
    if bad:  # unreadable files have no output, so every run tries them again and lists them anew
        (dst / UNREADABLE).write_text("".join(f"{p}\t{why}\n" for p, why in bad))
    elif (dst / UNREADABLE).exists():
        os.remove(dst / UNREADABLE)
    return {
        "src": str(src),
        "dst": str(dst),
        "written": len(jobs) - len(bad),
        "already_done": done,
        "lists": len(lists),
        "unreadable": [{"path": p, "reason": r} for p, r in bad],
    }
