"""Multi-process training: DDP wrapping, rank-0-only writes, per-step agreement between ranks.

The torchrun environment, joining the process group and the object collectives live one floor
down in :mod:`unidual.ranks` (``unidual eval`` needs them too); they are re-exported here so the
trainer reads every rank helper as ``D.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from unidual.ranks import (
    DistEnv,
    barrier,
    broadcast_object,
    env_from_torchrun,
    gather_objects,
    resolve_device,
    setup,
    teardown,
)

__all__ = [
    "DistEnv",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "broadcast_object",
    "env_from_torchrun",
    "gather_objects",
    "main_then_agree",
    "resolve_device",
    "setup",
    "teardown",
    "unwrap",
    "wrap",
]


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
