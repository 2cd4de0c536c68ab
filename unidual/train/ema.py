"""``run.ema_decay``: an exponential moving average of the weights, validated and saved beside them.

After every optimiser update, ``ema ← decay · ema + (1 − decay) · weights`` for every
parameter, as timm's ``ModelEmaV2`` / ``ModelEmaV3`` (no warm-up, no bias correction; the
average starts as a copy of the initial weights).

BatchNorm statistics (``buffers``): ``"average"`` (default, timm's default: V3 with
``exclude_buffers=False``) averages the float buffers -- running mean and variance -- with the
same decay, so the statistics follow the averaged weights at the same pace; ``"copy"`` (timm
V3 ``exclude_buffers=True``) copies the raw model's. Integer buffers (``num_batches_tracked``)
are always copied. The only exact fix is to recompute the statistics on the EMA weights
(precise BN, ``data.precise_bn_batches``), which the trainer can run on :attr:`ModelEma.module`
before validating it.

Parameters tied between modules (the per-pathway BN branches that share one scale and shift)
are averaged once: the update walks ``named_parameters()``, which lists a shared tensor once,
not ``state_dict()``, which lists it under every name.

Works on a DDP- or ``torch.compile``-wrapped model (it unwraps); :meth:`ModelEma.state_dict` /
:meth:`ModelEma.load_state_dict` make a resumed run continue bit-exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

BUFFERS = ("average", "copy")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = model.module
        elif hasattr(model, "_orig_mod"):
            inner = model._orig_mod
        else:
            return model
        assert isinstance(inner, nn.Module)
        model = inner


class ModelEma:
    """A frozen copy of ``model`` (eval mode) whose weights follow the EMA of the trained ones."""

    def __init__(self, model: nn.Module, decay: float, *, buffers: str = "average") -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1) (0 turns EMA off), got {decay}")
        if buffers not in BUFFERS:
            raise ValueError(f"buffers must be one of {BUFFERS}, got {buffers!r}")
        self.decay = float(decay)
        self.buffers = buffers
        self.updates = 0
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model``'s current weights (call after each optimiser update)."""
        source = unwrap(model)
        mine, theirs = dict(self.module.named_parameters()), dict(source.named_parameters())
        if mine.keys() != theirs.keys():
            raise ValueError("EMA: the model's parameters no longer match the averaged copy")
        names = list(mine)
        torch._foreach_lerp_([mine[n] for n in names], [theirs[n].detach() for n in names], 1.0 - self.decay)
        their_buffers = dict(source.named_buffers())
        for name, buf in self.module.named_buffers():
            value = their_buffers[name]
            if buf.is_floating_point() and self.buffers == "average":
                buf.lerp_(value, 1.0 - self.decay)
            else:
                buf.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: the averaged weights, the decay and the number of updates."""
        return {
            "decay": self.decay,
            "buffers": self.buffers,
            "updates": self.updates,
            "model": self.module.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if float(state["decay"]) != self.decay or state.get("buffers", "average") != self.buffers:
            raise ValueError(
                f"EMA state was saved with decay {state['decay']} ({state.get('buffers')} buffers), "
                f"now {self.decay} ({self.buffers})"
            )
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
