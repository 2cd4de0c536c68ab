"""Mixed precision for the training step: autocast around the forward, the fp16 loss scaler.

``run.amp``: ``off`` (fp32; on GPUs TF32 per ``run.tf32``), ``bf16`` (autocast to bfloat16, no
scaler: bfloat16 has fp32's range) or ``fp16`` (autocast to float16 plus a
:class:`torch.amp.GradScaler` on the training device -- ``"cuda"`` or ``"cpu"``, never hard-coded).

An fp16 step whose gradients (or loss) overflow is *skipped*, as torch's GradScaler intends: the
optimizer does not step, the scale is lowered, the LR schedule and the update counter do not
advance, and the skip is counted in the metrics log. Only :data:`MAX_CONSECUTIVE_SKIPS` skipped
steps in a row stop the run as diverged (a loss that is NaN at any scale is not an overflow).

On CPUs bf16/fp16 autocast works but is slow without bf16/fp16 units: allowed (tests use it on tiny
models), with a one-line warning.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from unidual.compat import require_torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MAX_CONSECUTIVE_SKIPS = 25  # fp16 steps skipped in a row before the run counts as diverged (2^-25 of the scale)


class Precision:
    """Autocast + loss scaling of one run (``amp``: off | bf16 | fp16) on ``device``."""

    def __init__(self, amp: str, device: torch.device, *, warn: bool = True) -> None:
        if amp not in ("off", *DTYPES):
            raise ValueError(f"run.amp must be off, bf16 or fp16, got {amp!r}")
        self.amp = amp
        self.device = device
        self.dtype = DTYPES.get(amp)
        if amp == "fp16":
            require_torch("2.3", "run.amp=fp16")  # torch.amp.GradScaler(device)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
        self.skipped_in_a_row = 0
        if self.dtype is not None and device.type == "cpu" and warn:
            print(
                f"warning: run.amp={amp} on the CPU: autocast runs, but CPUs without {amp} units are "
                "several times slower than fp32 (use run.amp=off for CPU training)",
                file=sys.stderr,
            )

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
        """Gradients back to their true scale (before clipping); with a scaler, the device flag
        "some gradient is inf/NaN" (not read here: the trainer agrees on it with its other flags)."""
        if self.scaler is None:
            return None
        self.scaler.unscale_(optimizer)
        # GradScaler keeps the per-device overflow flags of the unscale it just did; its own step()
        # would read them with a host sync, which the trainer's one flag agreement already covers.
        found = self.scaler._found_inf_per_device(optimizer)
        return torch.stack([f.to(self.device).reshape(()) for f in found.values()]).sum() if found else None

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step of an update whose gradients are finite (agreed by every rank)."""
        optimizer.step()
        if self.scaler is not None:
            self.scaler.update()  # may raise the scale (growth_interval finite steps in a row)
        self.skipped_in_a_row = 0

    def skip(self) -> bool:
        """An overflowing fp16 update: no step, lower the scale. False once too many were skipped in a row."""
        assert self.scaler is not None
        self.scaler.update()  # the recorded overflow halves the scale
        self.skipped_in_a_row += 1
        return self.skipped_in_a_row <= MAX_CONSECUTIVE_SKIPS  # read at call time: tests lower it

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def configure_cuda(device: torch.device, *, cudnn_benchmark: bool, tf32: bool) -> None:
    """The kernel choices of a CUDA run (process-wide; nothing to do on other devices).

    ``cudnn_benchmark``: cuDNN times its convolution algorithms for each new input shape and keeps
    the fastest (the shapes of a training run repeat, so the first steps pay for the rest).
    ``tf32``: fp32 convolutions and matmuls use TF32 tensor cores on Ampere and newer GPUs (10-bit
    mantissa products, fp32 accumulation), as PyTorch does for convolutions by default; off gives
    full fp32 matmuls and convolutions. Set explicitly either way, so a run never depends on
    torch's changing defaults.
    """
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = cudnn_benchmark
    precision = "tf32" if tf32 else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = precision
        # cuDNN's own setting and each of its ops' (a child set earlier does not follow its parent)
        for backend in (torch.backends.cudnn, torch.backends.cudnn.conv, torch.backends.cudnn.rnn):  # type: ignore[attr-defined]
            backend.fp32_precision = precision  # type: ignore[union-attr]
    else:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
