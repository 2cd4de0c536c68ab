"""Progress output: a bar on a terminal, a few plain lines in a log file (no carriage-return frames)."""

from __future__ import annotations

import io

from unidual.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal():
    log = io.StringIO()
    with Progress(total=500, desc="prepare", unit="file", file=log, every_s=3600) as bar:
        for _ in range(500):
            bar.update(1)
            bar.set_postfix(loss=0.5)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("prepare:") and "500/500" in lines[-1]  # first and last state


def test_a_bar_on_a_terminal():
    tty = _Terminal()
    with Progress(total=50, desc="prepare", file=tty, mininterval=0) as bar:
        for _ in range(50):
            bar.update(1)
    assert tty.getvalue().count("\r") > 10  # redrawn in place
