"""DDP as the trainer builds it, on 2 CPU processes (gloo): gradient buckets laid out like the gradients."""

from __future__ import annotations

import warnings

import torch
from helpers.ranks import run_ranks
from helpers.tinydata import tiny_config

from unidual.ranks import DistEnv
from unidual.train.config import load_config
from unidual.train.trainer import Trainer


def _fit(rank: int, world_size: int, sources: list[dict], out: str) -> None:
    # two threads: the multi-threaded CPU convolutions return some size-1-dimension weights' gradients
    # with other strides than the weights were created with (one thread happens to match)
    torch.set_num_threads(2)
    cfg = load_config(data=tiny_config(sources, run={"eval_every": 0, "channels_last": True}))
    trainer = Trainer(cfg, run_dir=f"{out}/run", env=DistEnv(rank, world_size, rank))
    assert isinstance(trainer.train_module, torch.nn.parallel.DistributedDataParallel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit()
    strides = [str(w.message) for w in caught if "strides do not match" in str(w.message)]
    assert not strides, strides[0]  # no gradient copied into a bucket of another layout
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_ddp_buckets_follow_the_gradients_layout(tiny_sources, tmp_path):
    run_ranks(_fit, 2, tmp_path, tiny_sources, str(tmp_path), wait_s=300)
