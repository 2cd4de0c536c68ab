"""The training input path: one loader for the whole run, and a micro-batch's move to the device.

The loader is built once (``persistent_workers``: worker processes and their open files survive
from one epoch to the next); each epoch the mixing sampler moves to its epoch and the workers are
reseeded as fresh ones would be (:class:`~unidual.data.mixing.EpochSeeded`), so augmentations are
the same with or without persistence. Batches are pinned on CUDA (asynchronous host-to-device
copies) of uint8 inputs, normalised on the device (:func:`to_device`). ``data.num_workers: auto`` (:func:`resolve_workers`): none on the CPU, where the training
step's threads use every core and an extra process would take cores from it; on a GPU, up to 8
per rank, leaving one core per rank for the training process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from unidual.data.mixing import EpochSeeded, MixedBatch, SubBatch, collate_mixed
from unidual.data.transforms import normalise_batch
from unidual.train.config import TrainConfig

if TYPE_CHECKING:  # build imports this module
    from unidual.train.build import DataParts

MAX_AUTO_WORKERS = 8


def resolve_workers(setting: int | str, device: torch.device) -> int:
    """``data.num_workers`` as a number of loader processes for this rank."""
    if setting != "auto":
        return int(setting)
    if device.type == "cpu":
        return 0
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(MAX_AUTO_WORKERS, cores // local_ranks - 1))


class TrainLoader:
    """This rank's batches, epoch after epoch, from one DataLoader."""

    def __init__(self, data: DataParts, cfg: TrainConfig, *, rank: int, device: torch.device) -> None:
        self.data, self.seed, self.rank = data, cfg.run.seed, rank
        self.workers = resolve_workers(cfg.data.num_workers, device)
        self.batches = EpochSeeded(data.sampler)
        extra: dict[str, Any] = {"persistent_workers": True, "prefetch_factor": 4} if self.workers else {}
        self.loader = DataLoader(
            data.mixed,
            batch_sampler=self.batches,
            collate_fn=collate_mixed,
            num_workers=self.workers,
            pin_memory=device.type == "cuda",
            generator=self._generator(0),
            **extra,
        )

    def _generator(self, epoch: int) -> torch.Generator:
        # private: creating an iterator must not consume the global RNG (exact resume)
        return torch.Generator().manual_seed(self.seed * 100_003 + epoch * 101 + self.rank)

    def epoch(self, epoch: int, resume_state: Mapping[str, Any] | None = None) -> Iterator[MixedBatch]:
        """The batches of ``epoch``; ``resume_state`` restarts the sampler mid-epoch (exact resume)."""
        if resume_state is not None:
            self.data.sampler.load_state_dict(resume_state)
        else:
            self.data.sampler.set_epoch(epoch)
        # the seed a DataLoader created for this epoch would give its workers
        self.batches.base_seed = int(torch.empty((), dtype=torch.int64).random_(generator=self._generator(epoch)))
        return iter(self.loader)


def to_device(
    sub: Mapping[str, SubBatch],
    device: torch.device,
    norms: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Inputs and labels of every source on ``device`` (asynchronous copies from pinned memory on CUDA);
    uint8 inputs are normalised there with their source's ``norms[key] = (mean, std)``."""
    nb = device.type == "cuda"
    out = {}
    for k, v in sub.items():
        x = v["input"].to(device, non_blocking=nb)
        if x.dtype == torch.uint8:
            if norms is None:
                raise ValueError(f"source {k!r}: uint8 inputs need their mean/std to be normalised")
            x = normalise_batch(x, *norms[k])
        out[k] = {"input": x, "label": v["label"].to(device, non_blocking=nb)}
    return out
