"""One writer per run directory, and the housekeeping only that writer may do.

``RunLock`` holds an exclusive ``fcntl.flock`` on ``RUN_DIR/.lock`` for the whole
run. The kernel drops a flock when its process dies (SIGKILL included), so a
lock file left by a killed run is *stale* by construction: the next start takes
it over and says whose it was. The file's text (pid, host, start time) lets a
refused second start name the holder.

With the lock held, the writer may tidy what a killed run left: temporary files
of interrupted checkpoint saves, a torn last line of ``metrics.jsonl`` (disk full
mid-append) and the records of an attempt that died before its first checkpoint.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from unidual import checkpoint as ckpt

LOCK_NAME = ".lock"
METRICS = "metrics.jsonl"


class RunDirError(RuntimeError):
    """The run directory cannot be used (a file, unwritable, or held by another process)."""


class RunLock:
    """Exclusive lock on a run directory; ``release()`` (or process exit) frees it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._file: IO[str] | None = None
        self.previous: str | None = None  # holder text of a stale lock that was taken over

    def acquire(self) -> RunLock:
        run_dir = self.path.parent
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"{run_dir}: is a file, not a run directory; choose another --out")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+")  # noqa: SIM115 - held open for the run: the flock lives on it
        except OSError as exc:
            raise RunDirError(f"{run_dir}: cannot create the run directory ({exc.strerror or exc})") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunDirError(
                f"{run_dir}: in use by {holder}; wait for it to finish, stop it, or choose another --out"
            ) from None
        f.seek(0)
        self.previous = f.read().strip() or None  # text left by a holder that died without releasing
        f.seek(0)
        f.truncate()
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        f.write(f"pid {os.getpid()} on {socket.gethostname()} (started {started})\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            try:
                self._file.seek(0)
                self._file.truncate()  # an empty lock file: nobody to name
            finally:
                self._file.close()  # closing drops the flock
                self._file = None


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files of checkpoint saves a killed run left (call with the lock held)."""
    removed = []
    for path in ckpt.stale_temp_files(run_dir):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """Records of a metrics.jsonl and how many lines were unreadable (torn by a full disk or a kill)."""
    records, bad = [], 0
    if not path.is_file():
        return records, bad
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            bad += 1
    return records, bad


def truncate_metrics(run_dir: Path, global_step: int) -> tuple[int, int]:
    """Keep the records up to the resumed checkpoint; returns (records dropped, torn lines dropped)."""
    path = Path(run_dir) / METRICS
    records, bad = read_metrics(path)
    if not path.exists():
        return 0, 0
    keep = [r for r in records if _step(r) <= global_step]
    write_metrics(path, keep)
    return len(records) - len(keep), bad


def _step(record: dict) -> float:
    step = record.get("step", 0)
    return step if isinstance(step, (int, float)) else 0


def write_metrics(path: Path, records: list[dict]) -> None:
    """Rewrite a metrics file atomically (temp + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)


def set_aside_aborted_metrics(run_dir: Path) -> Path | None:
    """A fresh start in a folder without a checkpoint: an earlier attempt's records move to metrics.aborted.jsonl."""
    path = Path(run_dir) / METRICS
    if not path.exists() or (Path(run_dir) / ckpt.LAST).exists():
        return None
    target = path.with_name("metrics.aborted.jsonl")
    os.replace(path, target)
    return target


def notice(message: str) -> None:
    print(f"unidual train: {message}", file=sys.stderr)
