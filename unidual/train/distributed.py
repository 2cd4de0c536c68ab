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
    (a batch without one source, or random aux routing). DDP lays its gradient buckets out like
    the parameters (which the trainer first gives their gradients' strides,
    :func:`unidual.models.memory.match_gradient_layout`); with ``gradient_as_bucket_view`` each
    gradient *is* its bucket view, so no second copy of the gradients is held.
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
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=True, gradient_as_bucket_view=True
    )


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
    (the same exception, pickled); other exceptions propagate on rank 0 only (a bug, not a decision).
    ``fn``'s result reaches every rank the same way: rank 0 can do work the others then share.
    """
    result: Any = None
    failure: Exception | None = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        try:
            result = fn()
        except errors as exc:
            failure = exc
    result, failure = broadcast_object((result, failure))  # the error travels pickled, with its arguments
    if failure is not None:
        raise failure
    return result


def flag_vector(flags: Sequence[bool | torch.Tensor], device: torch.device) -> torch.Tensor:
    """The flags as one float tensor on ``device``: host flags first (copied without waiting for the
    device), then the device flags in their order (see :func:`flag_order`)."""
    host = [float(f) for f in flags if not isinstance(f, torch.Tensor)]
    on_device = [
        f.detach().to(device=device, dtype=torch.float32).reshape(1) for f in flags if isinstance(f, torch.Tensor)
    ]
    parts = ([torch.tensor(host).to(device, non_blocking=True)] if host else []) + on_device
    return torch.cat(parts)


def flag_order(flags: Sequence[bool | torch.Tensor]) -> list[int]:
    """Where each flag sits in :func:`flag_vector`'s tensor."""
    host = [i for i, f in enumerate(flags) if not isinstance(f, torch.Tensor)]
    rest = [i for i, f in enumerate(flags) if isinstance(f, torch.Tensor)]
    position = {i: k for k, i in enumerate(host + rest)}
    return [position[i] for i in range(len(flags))]


def reduce_flags(vec: torch.Tensor) -> torch.Tensor:
    """Sum the flag vector over ranks (in place; identity for one process)."""
    if dist.is_initialized():
        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
    return vec


def any_rank(flags: Sequence[bool | torch.Tensor], device: torch.device) -> list[bool]:
    """For each flag: is it set on any rank? One all-reduce and ONE host read for all of them.

    The flags travel in a tensor on ``device`` (the training device): NCCL has no CPU backend, so a
    CPU tensor would fail there (``No backend type associated with device type cpu``). A flag may be
    a 0-dim tensor that is already on ``device`` (e.g. "the loss was not finite"): it joins without
    a read of its own. The answers come back as the bits of one integer: the whole agreement costs
    one device -> host synchronisation.
    """
    vec = reduce_flags(flag_vector(flags, device))
    bits = (vec > 0).long() * (2 ** torch.arange(len(flags), device=vec.device))
    code = int(bits.sum())  # the one device -> host read
    return [bool(code >> k & 1) for k in flag_order(flags)]
