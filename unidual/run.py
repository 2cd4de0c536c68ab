"""A run directory: every file name in it, its one-writer lock, its metrics log and its checkpoints.

Training writes a run, evaluation and the study read it; they all go through :class:`Run`, so the
layout lives here and nowhere else::

    config.yaml            the resolved training config (read back through unidual.yamlconfig)
    labels.json            {source key: {"modality": ..., "classes": [...]}}
    metrics.jsonl          one JSON record per line: {"type": "train" | "val", "step", "epoch", ...}
    metrics.aborted.jsonl  records of an attempt that died before its first checkpoint
    last.pt, best.pt       checkpoints (unidual.checkpoint: atomic, weights_only loadable)
    loss.png, accuracy.png curves (unidual.train.plots)
    tb/                    TensorBoard event files (run.tensorboard)
    .lock                  held by the one process that writes the run (:class:`RunLock`)
    study_result.json      a study's evaluation of the finished run (unidual.study; its presence = done)
    study_time.json        the training seconds a study measured, summed over resumed attempts

``RunLock`` holds an exclusive ``fcntl.flock`` on ``.lock`` for the whole run. The kernel drops a
flock when its process dies (SIGKILL included), so a lock file left by a killed run is *stale* by
construction: the next start takes it over and says whose it was. With the lock held, the writer
may tidy what a killed run left: temporary files of interrupted checkpoint saves, a torn last line
of ``metrics.jsonl`` and the records of an attempt that died before its first checkpoint.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import socket
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import yaml

from unidual import checkpoint as ckpt
from unidual.data.labels import load_label_maps
from unidual.yamlconfig import load_yaml_file


class RunDirError(RuntimeError):
    """The run directory cannot be used (a file, unwritable, or held by another process)."""


class RunWriteError(RunDirError):
    """A run file could not be written (disk full, permissions); the run can continue with --resume."""


class RunLock:
    """Exclusive lock on a directory; ``release()`` (or process exit) frees it."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.path = Path(directory) / Run.LOCK
        self._file: IO[str] | None = None
        self.previous: str | None = None  # holder text of a stale lock that was taken over

    def acquire(self) -> RunLock:
        folder = self.path.parent
        if folder.exists() and not folder.is_dir():
            raise RunDirError(f"{folder}: is a file, not a run directory; choose another --out")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+")  # noqa: SIM115 - held open for the run: the flock lives on it
        except OSError as exc:
            raise RunDirError(f"{folder}: cannot create the run directory ({exc.strerror or exc})") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunDirError(
                f"{folder}: in use by {holder}; wait for it to finish, stop it, or choose another --out"
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


class Run:
    """The files of one run directory (nothing is read or created until asked)."""

    CONFIG = "config.yaml"
    LABELS = "labels.json"
    METRICS = "metrics.jsonl"
    ABORTED_METRICS = "metrics.aborted.jsonl"
    LAST = ckpt.LAST
    BEST = ckpt.BEST
    PLOTS = ("loss.png", "accuracy.png")
    TENSORBOARD = "tb"
    LOCK = ".lock"
    STUDY_RESULT = "study_result.json"
    STUDY_TIME = "study_time.json"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # -- names -------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def labels_file(self) -> Path:
        return self.path / self.LABELS

    @property
    def metrics_file(self) -> Path:
        return self.path / self.METRICS

    @property
    def last(self) -> Path:
        return self.path / self.LAST

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / self.TENSORBOARD

    def has_checkpoint(self) -> bool:
        """True once the run saved its first checkpoint (it can be resumed)."""
        return self.last.is_file()

    # -- lock and housekeeping (with the lock held) -------------------------
    def lock(self) -> RunLock:
        return RunLock(self.path).acquire()

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the temp files of checkpoint saves a killed run left."""
        removed = []
        for path in ckpt.stale_temp_files(self.path):
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def set_aside_aborted_metrics(self) -> Path | None:
        """A fresh start without a checkpoint: an earlier attempt's records move to metrics.aborted.jsonl."""
        if not self.metrics_file.exists() or self.has_checkpoint():
            return None
        target = self.path / self.ABORTED_METRICS
        os.replace(self.metrics_file, target)
        return target

    # -- config and labels --------------------------------------------------
    def write_config(self, config: Mapping[str, Any]) -> None:
        self.config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        """The stored config as a plain dict, through the project's one YAML loader."""
        data = load_yaml_file(self.config_file)
        return data if isinstance(data, dict) else {}

    def write_labels(self, sources: Mapping[str, Mapping[str, Any]]) -> None:
        """``{key: {"modality": ..., "classes": [...]}}``."""
        self.labels_file.write_text(json.dumps({k: dict(v) for k, v in sources.items()}, indent=1))

    def read_labels(self) -> dict[str, list[str]]:
        """``{key: [class names]}`` of the run's sources."""
        return load_label_maps(self.labels_file)

    # -- metrics log ------------------------------------------------------------
    def read_metrics(self) -> tuple[list[dict[str, Any]], int]:
        return read_metrics(self.metrics_file)

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one record (strict JSON: NaN/inf become null); a failed append is undone, then raises."""
        line = json.dumps({k: json_value(v) for k, v in record.items()}, allow_nan=False) + "\n"
        with open(self.metrics_file, "a") as f:
            size = f.tell()
            try:
                f.write(line)
                f.flush()
            except OSError as exc:
                try:
                    f.truncate(size)  # no torn line: the file stays readable for --resume
                except OSError:
                    pass
                reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
                hint = "" if self.has_checkpoint() else " (no checkpoint yet: start again)"
                raise RunWriteError(
                    f"{self.metrics_file}: cannot append ({reason}) at step {record.get('step')}; "
                    f"free space, then continue with --resume {self.path}{hint}"
                ) from None

    def truncate_metrics(self, step: int) -> tuple[int, int]:
        """Keep the records up to ``step`` (the resumed checkpoint); returns (records dropped, torn lines)."""
        records, bad = self.read_metrics()
        if not self.metrics_file.exists():
            return 0, 0
        keep = [r for r in records if _step(r) <= step]
        tmp = self.metrics_file.with_name(self.METRICS + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, self.metrics_file)
        return len(records) - len(keep), bad

    # -- checkpoints ------------------------------------------------------------
    def save(self, payload: dict[str, Any], *, best: bool = False) -> None:
        """last.pt (and best.pt first, so a kill between the two leaves best.pt at least as new)."""
        if best:
            ckpt.save_checkpoint(self.best, payload)
        ckpt.save_checkpoint(self.last, payload)

    def load_last(self, map_location: str = "cpu") -> dict[str, Any]:
        return ckpt.load_checkpoint(self.last, map_location=map_location)


def read_metrics(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """Records of a metrics.jsonl and how many lines were unreadable (torn by a full disk or a kill)."""
    path = Path(path)
    records: list[dict[str, Any]] = []
    bad = 0
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


def json_value(value: Any) -> Any:
    """NaN / inf -> None so metrics.jsonl stays valid JSON (a score over zero examples is undefined)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _step(record: Mapping[str, Any]) -> float:
    step = record.get("step", 0)
    return step if isinstance(step, (int, float)) else 0
