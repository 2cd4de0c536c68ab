"""Which process am I: the torchrun environment, the process group, and object collectives.

``torchrun --nproc_per_node=K -m unidual train|eval ...`` sets RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT; :func:`setup` reads them and joins the
group (NCCL when the device is CUDA, gloo otherwise). Without those variables
everything runs as a single process and no group is created.

This sits below ``evaluate/`` and ``train/`` because both need it: training (DDP, validation)
and ``unidual eval`` (each rank evaluates a shard of the test sets). What only training needs
(DDP wrapping, per-step flag agreement) is in ``unidual.train.distributed``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from unidual.compat import torch_version

# Seconds a collective may wait for the slowest rank before the job aborts (run.dist_timeout_s,
# `unidual eval --dist-timeout-s`). torch's own default is 30 min for gloo but 10 min for NCCL;
# 30 min for both: a validation that waits on the slowest rank's shard of a large test set
# (decode-bound, on a shared filesystem) or on rank 0 saving a checkpoint must not abort the job,
# while a rank that died still stops the others within half an hour.
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_torchrun() -> DistEnv:
    """Rank / world size / local rank from the environment torchrun sets (defaults: one process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise RuntimeError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc})") from exc
    if not 0 <= rank < world:
        raise RuntimeError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistEnv(rank, world, local)


def resolve_device(name: str, env: DistEnv) -> torch.device:
    """``"auto"`` -> this process's GPU if CUDA is available, else CPU; an explicit name is kept."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and env.enabled:
        raise RuntimeError(
            f"device {name!r} names one GPU, but this is rank {env.rank} of {env.world_size}: every rank would "
            "use that GPU; use cuda (each rank takes its LOCAL_RANK's GPU) or set CUDA_VISIBLE_DEVICES"
        )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} asked for but CUDA is not available; use cpu or auto")
        if device.index is None:
            device = torch.device("cuda", env.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def setup(env: DistEnv, device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group torchrun prepared (no-op for one process or when already joined).

    ``timeout_s`` bounds every collective of the group (NCCL's watchdog included): how long a rank
    waits for the slowest one before the job aborts.
    """
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"the collective timeout must be a positive number of seconds, got {timeout_s}")
    if not env.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    store = _attempt_store(env)
    # NCCL binds this rank's GPU at creation (barrier, object collectives); the argument is torch >= 2.3's
    bind: dict[str, Any] = {"device_id": device} if device.type == "cuda" and torch_version() >= (2, 3, 0) else {}
    dist.init_process_group(
        backend=backend,
        rank=env.rank,
        world_size=env.world_size,
        store=store,
        timeout=timedelta(seconds=timeout_s),
        **bind,
    )


def _attempt_store(env: DistEnv) -> dist.Store | None:
    """Under torchrun, the agent's store with a per-attempt prefix (None elsewhere: the usual env:// rendezvous).

    A job torchrun restarts (``--max-restarts``) reuses the agent's store, where the
    killed attempt's process-group keys (its ranks' addresses) are still present: the new
    ranks read them and time out connecting to processes that are gone. A prefix per
    ``TORCHELASTIC_RESTART_COUNT`` gives every attempt its own keys.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), env.world_size, is_master=False)
    return dist.PrefixStore(f"unidual/attempt_{attempt}", agent)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when none is initialised."""
    if not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s value on every rank (identity for one process)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's value, in rank order, on every rank.

    Pickled, so any picklable value of any size per rank; under NCCL torch moves the bytes through
    the current CUDA device itself (set by :func:`resolve_device`), so CPU tensors inside ``obj`` are fine.
    """
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
