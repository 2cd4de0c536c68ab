"""Ranks never diverge: every rank runs the same pathways in the same order at every step.

SyncBatchNorm issues one collective per BN layer per forward; if one rank runs a pathway the
other skips (random auxiliary routing drawn per rank, or a source lost to unreadable files), the
collectives pair up wrongly and the job hangs until the timeout. torch's SyncBatchNorm refuses
CPU tensors, so these tests swap every BatchNorm for a CPU stand-in with the same collective
pattern (an all-reduce of the batch statistics per layer per forward) and train 2 gloo ranks
with a 30-second collective timeout: a divergence fails the test instead of passing silently.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from helpers.ranks import run_ranks
from helpers.tinydata import tiny_config
from torch.nn.modules.batchnorm import _BatchNorm

from unidual.ranks import DistEnv
from unidual.train.config import load_config
from unidual.train.trainer import Trainer


class _Synced:
    """forward of a BatchNorm whose training statistics are all-reduced over the ranks (as SyncBatchNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)  # type: ignore[misc]
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / x.shape[1]])
        stats = torch.cat([count, x.detach().sum(dims), (x.detach() ** 2).sum(dims)])
        dist.all_reduce(stats)  # one collective per layer per forward, like SyncBatchNorm's
        c = x.shape[1]
        mean = stats[1 : 1 + c] / stats[0]
        var = (stats[1 + c :] / stats[0] - mean**2).clamp_min(0)
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)  # type: ignore[attr-defined]


def _sync_batchnorm(model: torch.nn.Module) -> int:
    swapped = 0
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.__class__ = type(f"Synced{type(m).__name__}", (_Synced, type(m)), {})
            swapped += 1
    return swapped


class _Unreadable(torch.utils.data.Dataset):
    def __init__(self, dataset) -> None:
        self.dataset, self.files = dataset, dataset.files

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        raise OSError(f"{self.files[i]}: unreadable on this rank")


def _train(rank: int, world_size: int, sources: list[dict], out: str, unreadable_on_rank1: bool) -> None:
    cfg = load_config(
        data=tiny_config(
            sources,
            aux={"routing": "random", "p": 0.5},
            data={"max_skipped_fraction": 1.0},
            run={"eval_every": 0, "dist_timeout_s": 30, "seed": 3},
        )
    )
    trainer = Trainer(cfg, run_dir=f"{out}/run", env=DistEnv(rank, world_size, rank))
    assert _sync_batchnorm(trainer.model) > 0
    if unreadable_on_rank1 and rank == 1:  # this rank loses every example of every source
        mixed = trainer.data.mixed
        mixed.datasets = {k: _Unreadable(ds) for k, ds in mixed.datasets.items()}
    result = trainer.fit()
    assert result.global_step == trainer.total_updates == 4  # 2 epochs of 16 examples, 2 ranks x 4
    torch.save({k: v.clone() for k, v in trainer.model.state_dict().items()}, f"{out}/rank{rank}.pt")


def _same_weights(tmp_path) -> bool:
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    return all(torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_random_routing_keeps_ranks_in_step(tiny_sources, tmp_path):
    run_ranks(_train, 2, tmp_path, tiny_sources, str(tmp_path), False, timeout_s=30, wait_s=300)
    assert _same_weights(tmp_path)  # DDP kept the replicas identical


def test_a_rank_that_lost_every_example_still_runs_the_same_steps(tiny_sources, tmp_path):
    run_ranks(_train, 2, tmp_path, tiny_sources, str(tmp_path), True, timeout_s=30, wait_s=300)
    assert _same_weights(tmp_path)
