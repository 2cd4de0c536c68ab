"""Run a function in several CPU processes joined in one gloo process group (the distributed tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, fn: Callable[..., None], world_size: int, store: str, timeout_s: float, args: tuple) -> None:
    torch.set_num_threads(1)  # two ranks share the test machine's cores
    dist.init_process_group(
        "gloo",
        store=dist.FileStore(store, world_size),
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def run_ranks(
    fn: Callable[..., None], world_size: int, tmp_path: Path, *args: Any, timeout_s: float = 30, wait_s: float = 180
) -> None:
    """``fn(rank, world_size, *args)`` in ``world_size`` spawned processes (a module-level function).

    ``timeout_s`` is the group's collective timeout: a rank left waiting fails instead of hanging.
    A child's exception is raised here with its traceback; a job still running after ``wait_s``
    is killed and fails the test.
    """
    store = tmp_path / f"store-{time.monotonic_ns()}"
    ctx = mp.start_processes(
        _entry, args=(fn, world_size, str(store), timeout_s, args), nprocs=world_size, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + wait_s
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in ctx.processes:
                process.kill()
            raise TimeoutError(f"{world_size} ranks of {fn.__name__} still running after {wait_s:.0f} s")
