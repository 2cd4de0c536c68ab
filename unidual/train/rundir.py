"""Starting a run directory for training: take it, decide whether to continue it, write its files.

These are rank-0 steps; the trainer runs each through :func:`D.main_then_agree` so every rank
learns the outcome (or the error) at the same point.
"""

from __future__ import annotations

import sys
from typing import Any

from unidual.data.missing import report_missing
from unidual.run import Run, RunDirError, RunLock
from unidual.train.config import TrainConfig, dump_config
from unidual.train.errors import TrainingError
from unidual.yamlconfig import config_differences


def notice(message: str) -> None:
    print(f"unidual train: {message}", file=sys.stderr)


def take(run: Run) -> RunLock:
    """Lock the run directory (one writer) and remove what killed checkpoint saves left."""
    lock = run.lock()
    if lock.previous:
        notice(f"{run.path}: took over the stale lock of {lock.previous} (that process is gone)")
    for path in run.remove_stale_temp_files():
        notice(f"removed {path.name}, the temp file of a checkpoint save that was killed")
    return lock


def can_auto_resume(run: Run, cfg: TrainConfig) -> bool:
    """True when the run directory holds a checkpoint of this very config (a restarted job)."""
    if not run.has_checkpoint():
        return False
    stored = run.load_last().get("config") or {}
    diffs = config_differences(stored, cfg.to_dict())
    if diffs:
        key, old, new = diffs[0]
        raise RunDirError(
            f"{run.last}: holds a run of another config ({key}: {old!r} -> {new!r}); it is not resumed "
            f"automatically: use --resume {run.path} or another --out"
        )
    notice(f"{run.path}: resuming the run found there (same config)")
    return True


def write_run_files(
    run: Run,
    cfg: TrainConfig,
    *,
    resume: bool,
    sources: dict[str, dict[str, Any]],
    datasets: dict[str, dict[str, Any]],
) -> None:
    """config.yaml, labels.json and the missing-file reports; a fresh start refuses a folder holding a run.

    ``sources``: {key: {"modality", "classes"}}; ``datasets``: {"train": {key: dataset}, "test": {...}}.
    """
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        if not resume and run.has_checkpoint():
            raise TrainingError(
                f"{run.path}: already holds a run (last.pt); resume it with --resume {run.path} "
                "(or --auto-resume) or choose another --out"
            )
        if not resume and (aside := run.set_aside_aborted_metrics()):
            notice(
                f"{run.path}: an earlier attempt stopped before its first checkpoint; its records moved to {aside.name}"
            )
        dump_config(cfg, run.config_file)
        run.write_labels(sources)
        for split, sets in datasets.items():
            for line in report_missing(sets, split, run.path):
                print(f"warning: {line}", file=sys.stderr)
    except OSError as exc:
        raise TrainingError(f"{run.path}: cannot write the run files ({exc.strerror or exc})") from None


def truncate_on_resume(run: Run, step: int) -> None:
    """Drop records the killed run wrote after its last checkpoint, and lines torn by a full disk."""
    _, torn = run.truncate_metrics(step)
    if torn:
        notice(f"{run.metrics_file}: dropped {torn} unreadable line(s) (a write cut short by a full disk or a kill)")
