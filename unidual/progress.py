"""Progress display for every long command: a tqdm bar on a terminal, plain lines in a log.

A tqdm bar redraws itself with carriage returns; written to a file or a CI log those become
thousands of frames (a 17-minute demo log was mostly bar redraws). When the stream is not a
terminal, :class:`Progress` prints the same text as one ordinary line at most every
:data:`PLAIN_EVERY_S` seconds, plus a last line when it closes.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_EVERY_S = 30.0


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress(tqdm):
    """``tqdm`` with the same arguments; off a terminal, one plain line per ``every_s`` seconds."""

    def __init__(self, *args: Any, every_s: float = PLAIN_EVERY_S, **kwargs: Any) -> None:
        stream = kwargs.setdefault("file", sys.stderr)
        self._plain = not is_terminal(stream)
        self._every_s = every_s
        self._last_line = -float("inf")
        self._final = False
        if self._plain:
            kwargs["dynamic_ncols"] = False
            kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool | None:
        if not self._plain:
            return super().display(msg, pos)
        now = time.monotonic()
        if msg == "" or (not self._final and now - self._last_line < self._every_s):
            return True  # tqdm clearing its line, or too soon after the last one
        self._last_line = now
        # the closing line's newline comes from tqdm's close()
        self.fp.write((self.__str__() if msg is None else msg) + ("" if self._final else "\n"))
        self.fp.flush()
        return True

    def close(self) -> None:
        if self._plain:
            self._final = True  # tqdm's close shows the last state once (leave), whatever the interval
            self.leave = True
        super().close()
