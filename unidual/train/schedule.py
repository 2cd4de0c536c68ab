"""Learning-rate schedules, evaluated per iteration (optimiser update).

The paper: linear warm-up for 10 epochs, then ÷10 every 10 epochs (section 3.1),
or 10 warm-up + 35 cosine epochs (section 3.3). Epochs are converted to updates
with ``steps_per_epoch`` so the curve is smooth within an epoch and independent
of the batch size.

LR scaling rule: ``lr = base_lr × global_batch / reference_batch`` where
``global_batch = batch_size × accumulate × world_size`` (:func:`scaled_lr`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int | None) -> float:
    """Linear scaling: the LR grows with the number of examples per update."""
    if reference_batch is None:
        return base_lr
    if global_batch <= 0 or reference_batch <= 0:
        raise ValueError(f"batch sizes must be > 0, got global={global_batch}, reference={reference_batch}")
    return base_lr * global_batch / reference_batch


def steps_per_epoch(epoch_size: int, global_batch: int) -> int:
    """Updates in one epoch of ``epoch_size`` examples (the last partial update counts)."""
    return max(1, math.ceil(epoch_size / global_batch))


@dataclass
class WarmupDecay:
    """LR factor at update ``step`` (0-based): linear warm-up, then step / cosine / constant.

    A plain picklable object with only numbers and strings as attributes, so
    ``LambdaLR.state_dict()`` saves it and a ``weights_only`` checkpoint holds it.
    """

    total_steps: int
    warmup_steps: int = 0
    kind: str = "step"
    step_size: int = 1  # updates between decays ("step")
    gamma: float = 0.1
    warmup_start: float = 0.0
    min_factor: float = 0.0  # cosine floor

    def __post_init__(self) -> None:
        if self.kind not in ("step", "cosine", "constant"):
            raise ValueError(f"schedule kind must be 'step', 'cosine' or 'constant', got {self.kind!r}")
        if self.total_steps < 1 or not 0 <= self.warmup_steps <= self.total_steps or self.step_size < 1:
            raise ValueError(
                f"bad schedule lengths: total={self.total_steps}, warmup={self.warmup_steps}, step={self.step_size}"
            )

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            # reaches 1.0 at the first post-warm-up update; starts at warmup_start (> 0 after one update)
            frac = (step + 1) / (self.warmup_steps + 1)
            return self.warmup_start + (1.0 - self.warmup_start) * frac
        after = step - self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** (after // self.step_size)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, after / span)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedule(
    *,
    epochs: float,
    warmup_epochs: float,
    kind: str,
    step_epochs: float,
    gamma: float,
    steps_per_epoch: int,
    warmup_start: float = 0.0,
    min_lr_factor: float = 0.0,
) -> WarmupDecay:
    """A :class:`WarmupDecay` from a schedule given in epochs."""
    return WarmupDecay(
        total_steps=max(1, round(epochs * steps_per_epoch)),
        warmup_steps=round(warmup_epochs * steps_per_epoch),
        kind=kind,
        step_size=max(1, round(step_epochs * steps_per_epoch)),
        gamma=gamma,
        warmup_start=warmup_start,
        min_factor=min_lr_factor,
    )


def make_scheduler(optimizer: Optimizer, factor: WarmupDecay) -> LambdaLR:
    """A torch scheduler to call once per update (``scheduler.step()`` after ``optimizer.step()``)."""
    return LambdaLR(optimizer, lr_lambda=factor)


def from_config(schedule_cfg, steps_per_epoch: int) -> WarmupDecay:
    """The factor function of a :class:`unidual.train.config.ScheduleConfig`."""
    return build_schedule(
        epochs=schedule_cfg.epochs,
        warmup_epochs=schedule_cfg.warmup_epochs,
        kind=schedule_cfg.kind,
        step_epochs=schedule_cfg.step_epochs,
        gamma=schedule_cfg.gamma,
        steps_per_epoch=steps_per_epoch,
        warmup_start=schedule_cfg.warmup_start,
        min_lr_factor=schedule_cfg.min_lr_factor,
    )
