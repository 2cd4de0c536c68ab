"""The training input path: the loader of one epoch, and a micro-batch's move to the device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from unidual.data.mixing import SubBatch, collate_mixed
from unidual.train.build import DataParts
from unidual.train.config import TrainConfig


def train_loader(
    data: DataParts, cfg: TrainConfig, *, epoch: int, rank: int, device: torch.device,
    resume_state: Mapping[str, Any] | None = None,
) -> DataLoader:  # fmt: skip
    """This rank's loader for ``epoch``; ``resume_state`` restarts the sampler mid-epoch (exact resume)."""
    if resume_state is not None:
        data.sampler.load_state_dict(resume_state)
    else:
        data.sampler.set_epoch(epoch)
    # a private generator: creating the iterator must not consume the global RNG (exact resume)
    gen = torch.Generator().manual_seed(cfg.run.seed * 100_003 + epoch * 101 + rank)
    return DataLoader(
        data.mixed,
        batch_sampler=data.sampler,
        collate_fn=collate_mixed,
        num_workers=cfg.data.num_workers,
        generator=gen,
        pin_memory=device.type == "cuda",
    )


def to_device(sub: Mapping[str, SubBatch], device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
    """Inputs and labels of every source on ``device`` (asynchronous copies from pinned memory on CUDA)."""
    nb = device.type == "cuda"
    return {
        k: {"input": v["input"].to(device, non_blocking=nb), "label": v["label"].to(device, non_blocking=nb)}
        for k, v in sub.items()
    }
