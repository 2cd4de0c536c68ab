"""The parts of ``data prepare`` that are about trees, not pixels: walking a source tree (symlinked
folders followed, loops cut and reported), the destination's lock, which list names were written,
and printing file names that are not UTF-8."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from unidual.atomicfile import TMP_PREFIX, TMP_SUFFIX
from unidual.data.errors import DataError

LOCK = ".unidual-prepare.lock"


def shown(path: object) -> str:
    """A path for messages and UTF-8 files: bytes that are not UTF-8 written as ``\\xNN``."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def walk(src: Path, skip: Path | None = None) -> tuple[list[Path], list[str]]:
    """Every file under ``src`` (sorted; symlinked folders followed), and notes on what was not walked.

    A symlink to a folder already walked (a loop, or a second link to the same folder) is
    skipped with a note, as is a broken symlink; ``skip`` (the destination inside the source)
    is left out silently.
    """
    files: list[Path] = []
    notes: list[str] = []
    seen = {os.path.realpath(src)}
    avoid = os.path.realpath(skip) if skip is not None else None
    for folder, dirs, names in os.walk(src, followlinks=True):
        keep = []
        for name in sorted(dirs):
            full = os.path.join(folder, name)
            real = os.path.realpath(full)
            if real == avoid:
                continue
            if real in seen:
                rel = os.path.relpath(full, src)
                notes.append(f"skipped {shown(rel)}: symlink loop or second link to a folder already mirrored")
                continue
            seen.add(real)
            keep.append(name)
        dirs[:] = keep
        for name in sorted(names):
            full = os.path.join(folder, name)
            if (name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)) or name == LOCK:
                continue  # our own temporary files and lock (a destination inside the source)
            if os.path.isfile(full):
                files.append(Path(full))
            elif os.path.islink(full):
                notes.append(f"skipped {shown(os.path.relpath(full, src))}: broken symlink")
    return files, notes


class NameIndex:
    """Which source videos were written, looked up by the names list files give them.

    A list names a video relative to some folder (its own, the data root, mmaction2's
    ``data_prefix``) or absolutely: a name matches a source path when one ends with the
    other at a ``/`` boundary.
    """

    def __init__(self, videos: Iterable[tuple[str, bool]]) -> None:
        self._by_name: dict[str, list[tuple[str, bool]]] = defaultdict(list)
        for rel, ok in videos:
            self._by_name[rel.rsplit("/", 1)[-1]].append((rel, ok))

    def state(self, name: str) -> str:
        """``written``, ``failed`` (the source video's output was not written) or ``unknown`` (no such video)."""
        name = name.removeprefix("./")
        found = [
            ok
            for rel, ok in self._by_name.get(name.rsplit("/", 1)[-1], [])
            if rel == name or rel.endswith("/" + name) or name.endswith("/" + rel)
        ]
        if not found:
            return "unknown"
        return "written" if any(found) else "failed"


@contextlib.contextmanager
def locked(dst: Path) -> Iterator[None]:
    """Hold ``DST/.unidual-prepare.lock`` (an flock, freed by the kernel if the process dies); a second
    ``prepare`` into the same folder is refused in one line. Stale temporary files are removed first."""
    path = dst / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise DataError(f"{shown(dst)}: another `unidual data prepare` (pid {holder}) is writing here") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        for folder, _, names in os.walk(dst):  # temporary files of runs that were killed
            for name in names:
                if name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX):
                    os.unlink(os.path.join(folder, name))
        yield
    finally:
        os.close(fd)
