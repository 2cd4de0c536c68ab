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
CSVs describe the new tree. Symlinked folders are followed (a loop is reported and cut).

Nothing half-written is ever kept or counted: every output is written under a hidden
temporary name (:mod:`unidual.atomicfile`), flushed and renamed, so a final name proves a
complete file and a rerun redoes everything else. A full disk stops the run with
:class:`OutputError` (lists are only rewritten after every file was tried). A rewritten list
never names a video whose output could not be written: such lines are dropped and listed,
with the unreadable files, in ``DST/prepare_unreadable.txt``. Worker processes are started
with ``spawn`` (:mod:`unidual.data.workers`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
from PIL import Image

from unidual.atomicfile import atomic_path, output_errno, stale_temp_files, write_atomic
from unidual.data import archive as archive_mod
from unidual.data.budget import decode_budget
from unidual.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, load_image
from unidual.data.errors import DataError
from unidual.data.mirror import NameIndex, locked, shown, walk
from unidual.data.workers import media_pool
from unidual.progress import Progress

LIST_EXTENSIONS = (".txt", ".csv")
UNREADABLE = "prepare_unreadable.txt"
# video names in list lines: a non-space run ending in a video extension (gif is an image too: left alone)
_VIDEO_NAME = re.compile(
    r"(\S+?)\.(" + "|".join(e.lstrip(".") for e in VIDEO_EXTENSIONS if e != ".gif") + r")\b", re.IGNORECASE
)


class OutputError(Exception):
    """The destination cannot take more (disk full, quota, read-only): the run stops, nothing half-written kept."""


@dataclass(frozen=True)
class PrepareOptions:
    short_side: int
    keyframe_interval: int = 16
    images: bool = False  # resize images too (otherwise they are copied)
    crf: int = 23
    preset: str = "veryfast"


Job = tuple[str, str, str, PrepareOptions, tuple[float, float] | None]  # kind, source, target, options, window


def _target_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(w, h) with the shorter side ``short`` (never upscaled), both even for yuv420p."""
    scale = min(1.0, short / min(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _source(src: str) -> str | BinaryIO:
    """A file path, or the bytes of an ``archive.tar::member`` as a file object."""
    if archive_mod.SEP in src:
        archive, member = src.split(archive_mod.SEP, 1)
        return io.BytesIO(archive_mod.open_archive(archive).read(member))
    return src


def output_failure(dst: Path, exc: BaseException) -> OutputError:
    """The one-line OutputError of a write to ``dst`` that failed."""
    number = output_errno(exc)
    return OutputError(f"{shown(dst)}: {os.strerror(number).lower() if number else exc}")


def _failure(src: object, dst: Path, exc: BaseException, what: str) -> Exception:
    """OutputError when the destination is full or read-only, else DataError naming the source."""
    if output_errno(exc) is not None:
        return output_failure(dst, exc)
    return DataError(f"{shown(src)}: {what} ({exc})")


@contextlib.contextmanager
def _output(dst: Path) -> Iterator[Path]:
    """A temporary path for ``dst`` (see :func:`unidual.atomicfile.atomic_path`); failures to create,
    flush or rename it are the destination's (OutputError)."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            yield tmp
    except OSError as exc:
        raise output_failure(dst, exc) from exc


def encode_video(src: str | Path, dst: Path, opts: PrepareOptions, window: tuple[float, float] | None = None) -> None:
    """Re-encode one video (video stream only; only ``window`` seconds if given) to ``dst``.

    Raises DataError if the source cannot be read, OutputError if the destination is full.
    """
    with _output(dst) as tmp:
        try:
            _encode(src, tmp, opts, window)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise _failure(src, dst, exc, "not a readable video") from exc


def _encode(src: str | Path, tmp: Path, opts: PrepareOptions, window: tuple[float, float] | None) -> None:
    with av.open(_source(str(src))) as source:
        if not source.streams.video:
            raise DataError(f"{shown(src)}: no video stream")
        stream = source.streams.video[0]
        stream.thread_count = 1  # the pool's processes are the parallelism
        decode_budget().check_declared(shown(src), stream.codec_context.width, stream.codec_context.height)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        width, height = _target_size(stream.codec_context.width, stream.codec_context.height, opts.short_side)
        start, end = window if window is not None else (0.0, float("inf"))
        if start > 0.5:
            source.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        count = 0
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            # at most K frames between keyframes; x264 may add one at a scene cut (a seek point too)
            video.options = {"preset": opts.preset, "crf": str(opts.crf), "g": str(opts.keyframe_interval)}
            for frame in source.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                if t < start:
                    continue
                if t >= end:
                    break
                small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA", threads=1)
                small.pts, small.time_base = count, 1 / rate
                count += 1
                for packet in video.encode(small):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
    if count == 0:
        raise DataError(f"{shown(src)}: video has no frames" + (f" in {start:g}-{end:g} s" if window else ""))


def resize_image(src: str | Path, dst: Path, opts: PrepareOptions) -> None:
    """An image with its shorter side at most ``short_side``, in its own format."""
    source = _source(str(src))
    img = load_image(source.read() if not isinstance(source, str) else source, name=shown(src))
    size = _target_size(*img.size, opts.short_side) if min(img.size) > opts.short_side else img.size
    with _output(dst) as tmp:
        try:
            img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0).save(
                tmp, format=Image.registered_extensions().get(dst.suffix.lower(), "PNG"), quality=90
            )
        except (OSError, ValueError) as exc:
            raise _failure(src, dst, exc, "cannot be written resized") from exc


def copy_file(src: str | Path, dst: Path) -> None:
    """A byte-for-byte copy (flushed, renamed into place)."""
    with _output(dst) as tmp:
        try:
            source = _source(str(src))
            if isinstance(source, str):
                shutil.copyfile(source, tmp)
            else:
                tmp.write_bytes(source.read())
        except OSError as exc:
            raise _failure(src, dst, exc, "cannot be read") from exc


def video_target(rel: Path, clashes: set[str]) -> Path:
    """``a/x.avi`` -> ``a/x.mp4``; ``a/x_avi.mp4`` when ``a/x.mp4`` is a source video too (``clashes``)."""
    if rel.suffix.lower() != ".mp4" and rel.as_posix() in clashes:
        return rel.with_name(f"{rel.stem}_{rel.suffix.lower().lstrip('.')}.mp4")
    return rel.with_suffix(".mp4")


def rewrite_list(
    src: Path, dst: Path, clashes: AbstractSet[str] = frozenset(), names: NameIndex | None = None
) -> tuple[list[tuple[str, str]], int]:
    """A list/CSV file with every video name's extension changed to ``.mp4`` (as ``video_target`` names them).

    Lines naming a video ``names`` knows was not written are left out: returns them as
    ``(file:line, name)`` and the number of lines naming a video not in the source tree.
    Bytes that are not UTF-8 are kept as they are.
    """

    def new_name(match: re.Match) -> str:
        name = match.group(0)
        clash = any(c == name or c.endswith("/" + name) for c in clashes)
        return f"{match.group(1)}_{match.group(2).lower()}.mp4" if clash else f"{match.group(1)}.mp4"

    dropped: list[tuple[str, str]] = []
    unknown = 0
    kept = []
    text = src.read_bytes().decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        states = {n: names.state(n) for n in (m.group(0) for m in _VIDEO_NAME.finditer(line))} if names else {}
        failed = [n for n, state in states.items() if state == "failed"]
        if failed:
            dropped.append((f"{shown(src)}:{number}", shown(failed[0])))
            continue
        unknown += "unknown" in states.values()
        kept.append(_VIDEO_NAME.sub(new_name, line))
    write_atomic(dst, "".join(kept))
    return dropped, unknown


def _job(task: Job) -> tuple[str, str, str | None]:
    """One output: ``(status, source, reason)`` with status done / unreadable / full; the pool's unit of work."""
    kind, src, dst, opts, window = task
    target = Path(dst)
    try:
        if kind == "video":
            encode_video(src, target, opts, window)
        elif kind == "image":
            resize_image(src, target, opts)
        else:
            copy_file(src, target)
    except OutputError as exc:
        return "full", src, str(exc)
    except DataError as exc:
        return "unreadable", src, str(exc).replace(f"{shown(src)}: ", "", 1)
    except Exception as exc:
        return "unreadable", src, f"{type(exc).__name__}: {exc}"
    return "done", src, None


def run_jobs(jobs: list[Job], workers: int = 1, progress: bool = False) -> list[tuple[str, str]]:
    """Do every job (in ``workers`` spawned processes); returns the unreadable ``(source, reason)``.

    The first full-disk failure stops the run (OutputError); on it or on Ctrl-C the workers are
    ended and their temporary files removed, so only complete files keep a final name.
    """
    bad: list[tuple[str, str]] = []
    bar = Progress(
        total=len(jobs), unit="file", desc="prepare", disable=not progress, file=sys.stderr, dynamic_ncols=True
    )
    pool = None
    try:
        with bar:
            if workers > 1 and len(jobs) > 1:
                pool = media_pool(min(workers, len(jobs)))
                results: Iterable[tuple[str, str, str | None]] = pool.imap_unordered(_job, jobs)
            else:
                results = map(_job, jobs)
            for status, path, reason in results:
                if status == "full":
                    raise OutputError(reason)
                if status != "done":
                    bad.append((path, reason or ""))
                bar.update()
    except BaseException:
        if pool is not None:
            pool.terminate()
            pool.join()
            for folder in {Path(job[2]).parent for job in jobs}:  # what the ended workers were writing
                for tmp in stale_temp_files(folder):
                    tmp.unlink(missing_ok=True)
        raise
    finally:
        if pool is not None:
            pool.close()
    return sorted(bad)


def mp4_clashes(rels: list[Path]) -> set[str]:
    """Non-mp4 videos whose ``.mp4`` name another source video already has (``x.avi`` beside ``x.mp4``)."""
    names = {r.as_posix().lower() for r in rels}
    return {
        r.as_posix() for r in rels if r.suffix.lower() != ".mp4" and r.with_suffix(".mp4").as_posix().lower() in names
    }


def is_done(kind: str, src: str, target: Path) -> bool:
    """A final name is a complete file (written through a rename); a copy must also match the source's
    size, which catches files cut off by versions that wrote in place."""
    if not target.is_file():
        return False
    return kind != "copy" or archive_mod.SEP in src or target.stat().st_size == os.path.getsize(src)


def plan(src: Path, dst: Path, opts: PrepareOptions) -> dict[str, Any]:
    """The mirror of ``src`` in ``dst``: jobs still to do, lists to rewrite, outputs already done, notes."""
    files, notes = walk(src, skip=dst)
    is_video = [p.suffix.lower() in VIDEO_EXTENSIONS and p.suffix.lower() != ".gif" for p in files]
    clashes = mp4_clashes([p.relative_to(src) for p, v in zip(files, is_video) if v])
    jobs: list[Job] = []
    lists, done, too_long = [], 0, []
    limit = os.pathconf(dst if dst.is_dir() else dst.parent, "PC_NAME_MAX") if dst.parent.exists() else 255
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
        if len(os.fsencode(target.name)) > limit:
            too_long.append((str(path), f"output name {shown(target.name)} is longer than the file system allows"))
        elif is_done(kind, str(path), target):
            done += 1
        else:
            jobs.append((kind, str(path), str(target), opts, None))
    videos = [str(p) for p, v in zip(files, is_video) if v]
    return {
        "jobs": jobs,
        "lists": lists,
        "done": done,
        "clashes": clashes,
        "notes": notes,
        "too_long": too_long,
        "videos": videos,
    }


def check_destination(src: Path, dst: Path) -> None:
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{shown(dst)}: the destination exists and is not a folder")
    if src.resolve() == dst.resolve():
        raise DataError(f"{shown(dst)}: the destination must differ from the source")


def write_unreadable(dst: Path, bad: list[tuple[str, str]], dropped: list[tuple[str, str]]) -> None:
    """``prepare_unreadable.txt`` (UTF-8; names that are not are written with \\x escapes), or none if clean."""
    lines = [f"{shown(p)}\t{why}\n" for p, why in bad]
    lines += [f"{where}\tline dropped: names {name}, which was not written\n" for where, name in dropped]
    if lines:  # unreadable files have no output, so every run tries them again and lists them anew
        write_atomic(dst / UNREADABLE, "".join(lines))
    elif (dst / UNREADABLE).exists():
        os.remove(dst / UNREADABLE)


def prepare_dataset(
    src: str | Path, dst: str | Path, opts: PrepareOptions, workers: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Mirror ``src`` into ``dst`` (see the module doc); returns counts, unreadable files, dropped lines, notes.

    Raises DataError for unusable arguments and OutputError when the destination fills up.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"{shown(src)}: source folder not found")
    check_destination(src, dst)
    if opts.short_side < 2 or opts.keyframe_interval < 1:
        raise DataError("--short-side must be >= 2 and --keyframe-interval >= 1")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{shown(dst)}: cannot create the folder ({exc.strerror or exc})") from exc
    with locked(dst):
        todo = plan(src, dst, opts)
        failures = run_jobs(todo["jobs"], workers, progress)
        bad = failures + todo["too_long"]
        failed = {p for p, _ in bad}
        names = NameIndex((Path(v).relative_to(src).as_posix(), v not in failed) for v in todo["videos"])
        dropped: list[tuple[str, str]] = []
        unknown = 0
        for list_src, list_dst in todo["lists"]:
            try:
                lost, missing = rewrite_list(list_src, list_dst, todo["clashes"], names)
            except OSError as exc:
                raise _failure(list_src, list_dst, exc, "cannot be read") from exc
            dropped += lost
            unknown += missing
        try:
            write_unreadable(dst, sorted(bad), dropped)
        except OSError as exc:
            raise _failure(dst / UNREADABLE, dst / UNREADABLE, exc, "cannot be written") from exc
    return {
        "src": str(src),
        "dst": str(dst),
        "written": len(todo["jobs"]) - len(failures),
        "already_done": todo["done"],
        "lists": len(todo["lists"]),
        "unreadable": [{"path": p, "reason": r} for p, r in sorted(bad)],
        "dropped_lines": [{"where": w, "name": n} for w, n in dropped],
        "unknown_lines": unknown,
        "notes": todo["notes"],
    }
