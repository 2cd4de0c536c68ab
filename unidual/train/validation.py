"""Validation during training: precise BN statistics, the test sets' metrics, the score that picks best.pt.

With ``run.ema_decay`` the moving average of the weights is validated beside the raw weights
(precise BN recomputes both models' statistics on the same batches); :func:`better_weights`
names the one whose primary score is higher, which picks ``best.pt`` and is recorded in the
checkpoint as the default of ``eval/predict/export --weights``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from unidual.data.mixing import collate_mixed
from unidual.evaluate.evaluator import PRIMARY_METRIC, evaluate
from unidual.models import ImageVideoNet
from unidual.train import distributed as D
from unidual.train.build import DataParts, train_sampler
from unidual.train.config import TrainConfig
from unidual.train.inputs import to_device
from unidual.train.precise_bn import recompute_bn_statistics


def primary_score(metrics: Mapping[str, Mapping[str, float]], modalities: Mapping[str, str]) -> float:
    """Mean over sources of each modality's headline accuracy (image top1, video video@1)."""
    values = [m[PRIMARY_METRIC[modalities[k]]] for k, m in metrics.items() if PRIMARY_METRIC[modalities[k]] in m]
    return float(sum(values) / len(values)) if values else float("nan")


def better_weights(raw: float, ema: float | None) -> str:
    """``"ema"`` when the EMA weights scored strictly higher than the raw ones, else ``"raw"`` (NaN never wins)."""
    return "ema" if ema is not None and not math.isnan(ema) and (math.isnan(raw) or ema > raw) else "raw"


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
        head_of=data.heads,
    )


@torch.no_grad()
def _rank0_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (BN running statistics) on every rank; the tensors stay on the model's device."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def precise_bn(model: ImageVideoNet, data: DataParts, cfg: TrainConfig, device: torch.device, env: D.DistEnv,
               epoch: int, workers: int = 0, ema: nn.Module | None = None) -> None:  # fmt: skip
    """Recompute BN running statistics from fresh training batches (docs/training.md, precise BN).

    ``ema``: the EMA weights' statistics too, from the same batches (the exact fix for averaged statistics).
    """
    n = cfg.data.precise_bn_batches
    seed = cfg.run.seed + 7919 * (epoch + 1)
    sampler = train_sampler(cfg, data.train_sets, env, epoch_size=n * cfg.optim.batch_size * env.world_size, seed=seed)
    loader = DataLoader(data.mixed, batch_sampler=sampler, collate_fn=collate_mixed, num_workers=workers)
    target = model if ema is None else _Together(model, ema)
    recompute_bn_statistics(target, (to_device(batch.sub, device, data.norms) for batch in loader), device)
    if ema is not None:
        ema.eval()  # the average is only ever evaluated


class _Together(nn.Module):
    """Several models behind one forward, so precise BN runs every batch through each of them."""

    def __init__(self, *models: nn.Module) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: Tensor) -> None:
        for m in self.models:
            m(x)


def validation_record(
    model: ImageVideoNet,
    ema: ImageVideoNet | None,
    data: DataParts,
    cfg: TrainConfig,
    device: torch.device,
    env: D.DistEnv,
    workers: int,
    *,
    epoch: int,
    step: int,
) -> tuple[dict[str, dict[str, float]], dict[str, object], float, str | None]:
    """Validate the raw weights (and the EMA ones beside them): ``(metrics, record, score, weights)``.

    ``score`` is the better of the two primary scores, the one that picks best.pt; ``weights`` says
    whose ("raw" / "ema"; None without EMA). ``record`` is the ``metrics.jsonl`` line.
    """
    metrics = validate(model, data, cfg, device, env, workers)
    score = primary_score(metrics, data.modalities)
    record: dict[str, object] = {"type": "val", "epoch": epoch, "step": step, "score": score}
    for key, values in metrics.items():
        record.update({f"{key}/{m}": v for m, v in values.items()})
    if ema is None:
        return metrics, record, score, None
    ema_metrics = validate(ema, data, cfg, device, env, workers)
    ema_score = primary_score(ema_metrics, data.modalities)
    weights = better_weights(score, ema_score)
    record.update({"ema/score": ema_score, "weights": weights})
    for key, values in ema_metrics.items():
        record.update({f"ema/{key}/{m}": v for m, v in values.items()})
    return metrics, record, (ema_score if weights == "ema" else score), weights
