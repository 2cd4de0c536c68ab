"""``unidual study CONFIG --calibrate N``: time N updates of every run, extrapolate the study's training time.

Each run's real config is trained for N updates (data loading included, no validation worth
the name) in a temporary directory; the per-update time times the run's number of updates
gives its estimated training time. Both wall and process CPU time are shown: on a machine
other jobs are using, CPU time (with ``OMP_NUM_THREADS=1``) is the steadier estimate of what
one free core would take. Evaluation is not included (10-20 s per run at the shipped size).
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unidual.train.config import FinetuneConfig
from unidual.train.regimes import default_regime, get_regime
from unidual.train.trainer import Trainer

WARMUP = 2  # first updates allocate buffers and pick kernels: timed separately, not extrapolated


def _quick(cfg, updates: int):
    """The run's config, cut to ``updates`` updates with negligible validation; finetuning starts from scratch."""
    cfg = copy.deepcopy(cfg)
    if get_regime(cfg.regime).pretrained:  # same network and data cost; pretrained weights do not change the speed
        cfg.regime, cfg.finetune = default_regime(cfg.model.name, pretrained=False).name, FinetuneConfig()
    cfg.run.max_steps, cfg.run.save_every, cfg.run.eval_every = updates, 0, 0
    cfg.run.plots, cfg.run.progress, cfg.run.tensorboard = False, False, False
    cfg.data.eval_limit = 1
    return cfg


def time_run(cfg, updates: int) -> dict[str, float]:
    """Seconds per update (wall and process CPU) of ``cfg``, measured after ``WARMUP`` updates."""
    with tempfile.TemporaryDirectory(prefix="unidual-calibrate-") as tmp:
        warm = Trainer(_quick(cfg, WARMUP), run_dir=Path(tmp) / "run")
        warm.fit()
        total_updates = warm.schedule.total_steps  # the full schedule's updates (max_steps only caps the run)
        trainer = Trainer(_quick(cfg, WARMUP + updates), run_dir=Path(tmp) / "run", resume=True)
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.fit()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": wall / updates, "cpu": cpu / updates, "updates": float(total_updates)}


def calibrate(
    tasks: Sequence[Any], configs: Sequence[Any], updates: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Per run: seconds per update and the extrapolated training minutes; prints a table as it goes."""
    rows = []
    log(
        f"{'run':24s} {'updates':>8s} {'ms/update wall':>15s} {'ms/update CPU':>14s} {'est. min wall':>14s} "
        f"{'est. min CPU':>13s}"
    )
    for task, cfg in zip(tasks, configs):
        t = time_run(cfg, updates)
        row = {
            "id": task.model.id,
            "seed": task.seed,
            "updates": int(t["updates"]),
            "wall_per_update": t["wall"],
            "cpu_per_update": t["cpu"],
            "minutes_wall": t["wall"] * t["updates"] / 60,
            "minutes_cpu": t["cpu"] * t["updates"] / 60,
        }
        rows.append(row)
        log(
            f"{row['id']:24s} {row['updates']:8d} {1000 * t['wall']:15.0f} {1000 * t['cpu']:14.0f} "
            f"{row['minutes_wall']:14.1f} {row['minutes_cpu']:13.1f}"
        )
    log(
        f"{'total training':24s} {'':8s} {'':15s} {'':14s} {sum(r['minutes_wall'] for r in rows):14.1f} "
        f"{sum(r['minutes_cpu'] for r in rows):13.1f}"
    )
    return rows
