"""Multi-process training: torchrun environment -> process group, DDP wrapping, rank-0-only writes.

``torchrun --nproc_per_node=K -m unidual train CONFIG`` sets RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT; :func:`setup` reads them and joins the
group (NCCL when the device is CUDA, gloo otherwise). Without those variables
everything runs as a single process and no group is created.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn


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
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("run.device=cuda but CUDA is not available; use run.device=cpu or auto")
        if device.index is None:
            device = torch.device("cuda", env.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def setup(env: DistEnv, device: torch.device) -> None:
    """Join the process group torchrun prepared (no-op for one process or when already joined)."""
    if not env.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    store = _attempt_store(env)
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size, store=store)


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


def wrap(model: nn.Module, env: DistEnv, device: torch.device, *, sync_bn: bool = False) -> nn.Module:
    """DDP around ``model`` (and SyncBatchNorm if asked; CUDA only) when running on several processes.

    ``find_unused_parameters`` is on because a step may not touch every head
    (a batch without one source, or random aux routing).
    """
    if sync_bn:
        if device.type != "cuda":
            raise RuntimeError(
                "run.sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel); set run.sync_bn=false on CPU"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if not env.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (identity for one process)."""
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s value on every rank (identity for one process)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


T = TypeVar("T")


def main_then_agree(fn: Callable[[], T], errors: tuple[type[Exception], ...]) -> T:
    """Run ``fn`` on rank 0 only; every rank then returns its result, or every rank raises its error.

    The one pattern for a rank-0-only step that may fail (taking the run directory's lock, writing
    the run files, saving a checkpoint): if rank 0 raised alone, the other ranks would wait in their
    next collective until the timeout. An error of one of ``errors`` types is re-raised on every rank
    with rank 0's type and message; other exceptions propagate on rank 0 only (a bug, not a decision).
    """
    result: Any = None
    failure: tuple[type[Exception], str] | None = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        try:
            result = fn()
        except errors as exc:
            failure = (type(exc), str(exc))
    result, failure = broadcast_object((result, failure))
    if failure is not None:
        raise failure[0](failure[1])
    return result


def any_rank(flags: Sequence[bool | torch.Tensor], device: torch.device) -> list[bool]:
    """For each flag: is it set on any rank? One all-reduce and ONE host read for all of them.

    The flags travel in a tensor on ``device``: NCCL has no CPU backend, so a CPU tensor would fail
    there (``No backend type associated with device type cpu``). A flag may be a 0-dim tensor that
    is already on ``device`` (e.g. "the loss was not finite"): it joins without a read of its own.
    The answers come back as the bits of one integer, so the whole agreement costs one sync.
    """
    host = [i for i, f in enumerate(flags) if not isinstance(f, torch.Tensor)]
    parts = [torch.zeros((), device=device)] * len(flags)
    if host:
        values = torch.tensor([float(flags[i]) for i in host])
        if device.type == "cuda":
            values = values.pin_memory()
        values = values.to(device, non_blocking=True)
        for j, i in enumerate(host):
            parts[i] = values[j]
    for i, f in enumerate(flags):
        if isinstance(f, torch.Tensor):
            parts[i] = f.detach().to(device=device, dtype=torch.float32).reshape(())
    vec = torch.stack(parts).float()
    if dist.is_initialized():
        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
    bits = (vec > 0).long() * (2 ** torch.arange(len(flags), device=device))
    code = int(bits.sum())  # the one device -> host read
    return [bool(code >> i & 1) for i in range(len(flags))]
