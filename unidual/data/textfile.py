"""The one reader of the data package's text files: lists, CSVs, split files, class and label files.

Every such file is read as UTF-8 (a leading byte-order mark is dropped, as Windows editors
write one). A byte that is not UTF-8 is refused with one line naming the file, the line and
the byte, rather than decoded with a fallback: a guessed encoding would turn a file name into
a different file name, which then fails later and further from the cause.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unidual.data.errors import DataError


def read_text(path: str | Path) -> str:
    """The whole file as text; DataError naming ``file:line`` for a non-UTF-8 byte, or an unreadable file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); save the file as UTF-8"
        ) from None


def read_lines(path: str | Path, comments: bool = True) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of every line that is not blank (nor, with ``comments``, a ``#`` line).

    Line ends may be LF or CRLF (UCF101's split files are CRLF, as distributed).
    """
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        text = line.strip()
        if text and not (comments and text.startswith("#")):
            rows.append((number, text))
    return rows


def read_json(path: str | Path) -> Any:
    """A JSON document; DataError naming the file (and the line) when it is not UTF-8 or not JSON."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
