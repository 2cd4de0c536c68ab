"""DDP as the trainer builds it, on 2 CPU processes (gloo)."""

from __future__ import annotations

import warnings

import torch
from helpers.ranks import run_ranks

from unidual.models import create_model
from unidual.ranks import DistEnv
from unidual.train import distributed as D


def _channels_last_step(rank: int, world_size: int) -> None:
    torch.set_num_threads(2)  # the multi-threaded CPU convolution is the one whose gradient strides differ
    model = create_model("r2plus1d", depth=10, width=0.125, heads={"vid": 3}, channels_last=True)
    ddp = D.wrap(model, DistEnv(rank, world_size, rank), torch.device("cpu"))
    assert isinstance(ddp, torch.nn.parallel.DistributedDataParallel)
    clip = torch.randn(2, 3, 4, 32, 32).contiguous(memory_format=torch.channels_last_3d)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            ddp(clip)["vid"].sum().backward()
    strides = [str(w.message) for w in caught if "strides do not match" in str(w.message)]
    assert not strides, strides[0]  # gradients were not copied into contiguous buckets
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_ddp_buckets_follow_the_channels_last_layout(tmp_path):
    run_ranks(_channels_last_step, 2, tmp_path)
