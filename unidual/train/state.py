"""What a checkpoint holds to continue a run exactly, and putting it back.

Exact resume means the continued run computes what the uninterrupted one would have: weights,
optimiser and LR-schedule state, the sampler's position inside the epoch, the loss scaler, and
every random stream the loop draws from (torch, numpy, Python, the routing generator; CUDA when
in use) -- per rank, since every rank draws its own augmentations -- and, with ``run.ema_decay``,
the moving average of the weights (a top-level ``"ema"`` entry, so ``eval/predict/export
--weights ema`` read it without the training state) with ``"weights"``: which of the two scored
better at the last validation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from unidual import checkpoint as ckpt
from unidual.models import ImageVideoNet
from unidual.train import distributed as D
from unidual.train.config import ConfigError
from unidual.train.ema import ModelEma
from unidual.train.errors import TrainingError


@dataclass
class RunResult:
    """What :func:`unidual.train.trainer.train` returns."""

    run_dir: Path
    global_step: int
    epoch: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # last validation
    best_score: float | None = None


@dataclass
class LoopState:
    """Where the loop is: the counters a checkpoint stores beside the stateful objects."""

    epoch: int = 0
    step_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    global_step: int = 0  # optimiser updates
    best_score: float | None = None
    last_metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # last validation
    weights: str = "raw"  # with EMA: the weights ("raw" | "ema") that scored better at the last validation


def rng_state() -> dict[str, Any]:
    """Every RNG the loop touches, as tensors / plain values (``weights_only``-safe)."""
    # the legacy tuple: the global RandomState is an MT19937 (numpy types the call for any bit generator)
    kind, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def training_state(
    loop: LoopState,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler: Any,
    scaler: torch.amp.GradScaler | None,
    generator: torch.Generator,
    world_size: int,
) -> dict[str, Any]:
    """The ``train_state`` entry of a checkpoint. Collective: every rank calls it (RNG states are gathered)."""
    rngs = D.gather_objects({"rng": rng_state(), "generator": generator.get_state()})
    return {
        "epoch": loop.epoch,
        "step_in_epoch": loop.step_in_epoch,
        "global_step": loop.global_step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(steps_done=loop.step_in_epoch),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rngs,
        "world_size": world_size,
        "best_score": loop.best_score,
        "weights": loop.weights,
    }


def checkpoint_payload(
    model: ImageVideoNet,
    sources: Mapping[str, Mapping[str, Any]],
    config: Mapping[str, Any],
    loop: LoopState,
    train_state: Mapping[str, Any],
    ema: ModelEma | None = None,
) -> dict[str, Any]:
    """The whole checkpoint (layout: unidual/checkpoint.py); ``sources``: {key: {"modality", "classes"[, "head"]}}."""
    payload: dict[str, Any] = {
        "model": model.state_dict(),
        "model_spec": model.spec,
        "sources": {k: dict(v) for k, v in sources.items()},
        "config": dict(config),
        "metrics": loop.last_metrics,
        "train_state": dict(train_state),
    }
    if ema is not None:  # absent without EMA: such a checkpoint is what it always was
        payload["ema"] = ema.state_dict()
        payload["weights"] = loop.weights
    return payload


def restore(
    payload: Mapping[str, Any],
    file: Path,
    *,
    model: ImageVideoNet,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    generator: torch.Generator,
    env: D.DistEnv,
    ema: ModelEma | None = None,
) -> tuple[LoopState, dict[str, Any] | None]:
    """Put a checkpoint back; returns the loop state and the sampler state to restart mid-epoch from (or None)."""
    state = payload.get("train_state")
    if not state:
        raise TrainingError(f"{file}: holds no training state, cannot resume")
    differ = ckpt.spec_differences(payload["model_spec"], model.spec)
    if differ:  # e.g. a default that changed since the run started: name it rather than fail on a tensor
        raise ConfigError(
            f"{file}: was trained with another model ({'; '.join(differ[:4])}); "
            "set the config to the stored values to resume it"
        )
    ckpt.load_weights(model, payload["model"], file)
    restore_ema(payload, file, ema)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    loop = LoopState(
        epoch=int(state["epoch"]),
        step_in_epoch=int(state["step_in_epoch"]),
        global_step=int(state["global_step"]),
        best_score=state.get("best_score"),
        last_metrics=dict(payload.get("metrics") or {}),
        weights=str(state.get("weights", "raw")),
    )
    if int(state.get("world_size", 1)) != env.world_size:
        raise TrainingError(
            f"{file.parent}: the run used {state.get('world_size')} process(es); resume it with the same "
            f"number (now {env.world_size}) so data order and RNG streams continue exactly"
        )
    mine = state["rng"][env.rank]
    set_rng_state(mine["rng"])
    generator.set_state(mine["generator"])
    return loop, (dict(state["sampler"]) if loop.step_in_epoch else None)


def restore_ema(payload: Mapping[str, Any], file: Path, ema: ModelEma | None) -> None:
    """The moving average back into ``ema``; a checkpoint with EMA and a config without (or the reverse) is refused."""
    stored = payload.get("ema")
    if ema is None and stored is None:
        return
    if ema is None or stored is None:
        had = f"with run.ema_decay={stored['decay']}" if stored is not None else "without EMA (run.ema_decay=0)"
        raise ConfigError(f"{file}: was trained {had}; resume it with the same run.ema_decay")
    try:
        ema.load_state_dict(stored)  # the averaged weights fit: the raw ones, of the same model, just did
    except ValueError as exc:
        raise ConfigError(f"{file}: {exc}; resume it with the same run.ema_decay") from None
