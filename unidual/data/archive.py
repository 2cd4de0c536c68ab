"""Read image files straight out of a .tar / .tar.gz / .tgz archive without unpacking it.

An uncompressed tar is read in place (each read opens the file and seeks to the member).
A gzip-compressed tar cannot be seeked cheaply, so its file members are decompressed
once per process into one contiguous buffer (compressed image bytes, e.g. 55 MB for
CIFAR-10) that forked DataLoader workers share.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from unidual.data.errors import DataError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
SEP = "::"  # "archive.tar.gz::member/path.jpg" names a member in messages and file lists


def is_archive(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(ARCHIVE_SUFFIXES)


class Archive:
    """Member name -> bytes for one tar archive."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: archive not found")
        self.compressed = not str(self.path).lower().endswith(".tar")
        self._offsets: dict[str, tuple[int, int]] = {}
        self._blob: np.ndarray | None = None
        try:
            with tarfile.open(self.path, "r:*") as tf:
                self._index(tf)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{self.path}: not a readable tar archive ({exc})") from exc

    def _index(self, tf: tarfile.TarFile) -> None:
        chunks: list[bytes] = []
        position = 0
        for member in tf:
            if not member.isfile():
                continue
            name = member.name.lstrip("./") if member.name.startswith("./") else member.name
            if self.compressed:
                extracted = tf.extractfile(member)
                assert extracted is not None  # a regular file (isfile above) always extracts
                data = extracted.read()
                chunks.append(data)
                self._offsets[name] = (position, len(data))
                position += len(data)
            else:
                self._offsets[name] = (member.offset_data, member.size)
        if self.compressed:
            self._blob = np.frombuffer(b"".join(chunks), dtype=np.uint8)

    def names(self) -> list[str]:
        return list(self._offsets)

    def __contains__(self, name: str) -> bool:
        return name in self._offsets

    def read(self, name: str) -> bytes:
        if name not in self._offsets:
            raise DataError(f"{self.path}{SEP}{name}: no such member in the archive")
        offset, size = self._offsets[name]
        if self._blob is not None:
            return self._blob[offset : offset + size].tobytes()
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return fh.read(size)


_CACHE: dict[str, Archive] = {}


def open_archive(path: str | Path) -> Archive:
    """One Archive per path per process (train and test splits share it)."""
    key = str(Path(path).resolve())
    if key not in _CACHE:
        _CACHE[key] = Archive(path)
    return _CACHE[key]
