"""Files that appear complete or not at all: a temporary name in the same folder, fsync, rename.

A file written straight to its final name and cut off (SIGKILL, power, a full disk) looks
finished to the next run and to every reader. Here the final name only ever appears by a
rename of a file whose bytes were already flushed, and the folder is flushed after the rename,
so "the final name exists" proves the file is complete.

Temporary names are hidden (``.unidual-<hash>.<pid>.part``): no media extension, so no
dataset format indexes them, and short whatever the final name's length, so a final name at
the file system's limit (NAME_MAX, 255 bytes) still gets one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".unidual-"
TMP_SUFFIX = ".part"
#: Errors that are about the destination being full or read-only, never about a file being read.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def temp_path(final: str | os.PathLike, *, keep_suffix: bool = False) -> Path:
    """The temporary name :func:`atomic_path` writes ``final`` under (same folder, one per process, so
    two processes writing the same file never rename each other's half-written bytes); ``keep_suffix``
    ends it in ``final``'s suffix for writers that pick a format by it (matplotlib, numpy)."""
    final = Path(final)
    digest = hashlib.sha1(os.fsencode(final.name)).hexdigest()[:16]
    return final.with_name(f"{TMP_PREFIX}{digest}.{os.getpid()}{TMP_SUFFIX}{final.suffix if keep_suffix else ''}")


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's (or a folder's) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``final`` to; on a normal exit it is flushed and renamed to ``final``.

    On any exception (or KeyboardInterrupt) the temporary file is removed and ``final`` is untouched.
    """
    final = Path(final)
    tmp = temp_path(final, keep_suffix=keep_suffix)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_path(final.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (str: UTF-8, undecodable names kept as their bytes) so ``path`` is whole or absent."""
    path = Path(path)
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
    return path


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary files of writes killed before their rename, in ``folder`` (not below it)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"))


def output_errno(exc: BaseException) -> int | None:
    """The errno of a full or read-only destination in ``exc`` or its causes, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        number = getattr(seen, "errno", None)
        if number in OUTPUT_ERRNOS:
            return number
        seen = seen.__cause__ or seen.__context__
    return None
