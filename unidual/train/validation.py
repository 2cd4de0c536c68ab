"""Validation during training: precise BN statistics, the test sets' metrics, the score that picks best.pt."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from unidual.data.mixing import MixedSampler, collate_mixed
from unidual.evaluate.evaluator import PRIMARY_METRIC, evaluate
from unidual.models import ImageVideoNet
from unidual.train import distributed as D
from unidual.train.build import DataParts
from unidual.train.config import TrainConfig
from unidual.train.inputs import to_device
from unidual.train.precise_bn import recompute_bn_statistics


def primary_score(metrics: Mapping[str, Mapping[str, float]], modalities: Mapping[str, str]) -> float:
    """Mean over sources of each modality's headline accuracy (image top1, video video@1)."""
    values = [m[PRIMARY_METRIC[modalities[k]]] for k, m in metrics.items() if PRIMARY_METRIC[modalities[k]] in m]
    return float(sum(values) / len(values)) if values else float("nan")


def validate(
    model: ImageVideoNet, data: DataParts, cfg: TrainConfig, device: torch.device, env: D.DistEnv, workers: int = 0
) -> dict[str, dict[str, float]]:
    """Every source's test metrics: each rank evaluates its shard, the same dict on every rank.

    The metrics equal one process evaluating rank 0's model, the one ``last.pt`` / ``best.pt`` store:
    rank 0's BatchNorm statistics are copied to every rank first (they differ after the last
    training forward, and after precise BN, which each rank computes from its own batches).
    """
    _rank0_buffers(model)
    return evaluate(
        model,
        data.test_sets,
        data.modalities,
        batch_size=cfg.data.eval_batch_size,
        device=device,
        num_workers=workers,
        progress=cfg.run.progress,  # shown by rank 0 only
        distributed=True,
    )


@torch.no_grad()
def _rank0_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (BN running statistics) on every rank; the tensors stay on the model's device."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def precise_bn(model: ImageVideoNet, data: DataParts, cfg: TrainConfig, device: torch.device, env: D.DistEnv,
               epoch: int, workers: int = 0) -> None:  # fmt: skip
    """Recompute BN running statistics from fresh training batches (docs/training.md, precise BN)."""
    n = cfg.data.precise_bn_batches
    sampler = MixedSampler(
        {k: len(ds) for k, ds in data.train_sets.items()},
        batch_size=cfg.optim.batch_size,
        epoch_size=n * cfg.optim.batch_size * env.world_size,
        weights=cfg.data.weights,
        seed=cfg.run.seed + 7919 * (epoch + 1),
        rank=env.rank,
        world_size=env.world_size,
    )
    loader = DataLoader(data.mixed, batch_sampler=sampler, collate_fn=collate_mixed, num_workers=workers)
    recompute_bn_statistics(model, (to_device(batch.sub, device, data.norms) for batch in loader), device)
