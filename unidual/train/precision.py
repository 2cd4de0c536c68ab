"""Mixed precision for the training step: autocast around the forward, the fp16 loss scaler.

``run.amp``: ``off`` (fp32; TF32 matmuls/convolutions on GPUs per ``run.tf32``), ``bf16`` (autocast
to bfloat16, no scaler: its range is fp32's) or ``fp16`` (autocast to float16 with a
:class:`torch.amp.GradScaler` on the training device).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast + loss scaling of one run (``amp``: off | bf16 | fp16) on ``device``."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.amp = amp
        self.device = device
        self.dtype = DTYPES.get(amp)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradients back to their true scale (before clipping); no-op without a scaler."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
