"""Memory format of the convolution weights: channels-last (NTHWC) by default, because it is faster.

oneDNN (CPU) and cuDNN pick their memory layout from the tensors a convolution gets: with
``channels_last_3d`` weights every convolution -- and so every activation, BatchNorm and ReLU
after it, forward and backward -- runs channels-last, whatever layout the input batch has,
which is faster on CPU and GPU alike (measured in docs/performance.md). Only strides change,
never values: outputs agree with the contiguous model to float rounding, state_dicts load
either way.

The image pathway needs nothing extra: ``weight[:, :, 0]`` of a ``channels_last_3d`` weight is
a ``channels_last`` 2D weight, so 2D convolutions run channels-last too, and a channels-last
clip folds into frames (``unidual.pathways.fold_frames``) without a copy.

Turn it off per model with ``set_memory_format(model, channels_last=False)``, for training
with the config key ``run.channels_last: false``, or for every model built in a process with
the environment variable ``UNIDUAL_CHANNELS_LAST=0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from unidual.runtime import env_flag

ENV_SWITCH = "UNIDUAL_CHANNELS_LAST"
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def default_channels_last() -> bool:
    """True unless ``$UNIDUAL_CHANNELS_LAST`` is 0 / false / no / off."""
    return env_flag(ENV_SWITCH)


def _format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last_3d if channels_last else torch.contiguous_format


def set_memory_format(model: ModuleT, channels_last: bool = True) -> ModuleT:
    """Store every 5D parameter and buffer of ``model`` channels-last (or contiguous), in place.

    Parameters stay the same objects, so an optimiser created earlier still holds them; call
    this before creating one anyway, so that its state (momentum) is created in the same layout.
    """
    fmt = _format(channels_last)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 5 and not p.is_contiguous(memory_format=fmt):
                p.data = p.data.contiguous(memory_format=fmt)
                if p.grad is not None:
                    p.grad = p.grad.contiguous(memory_format=fmt)
        for module in model.modules():
            for name, b in module.named_buffers(recurse=False):
                if b is not None and b.dim() == 5 and not b.is_contiguous(memory_format=fmt):
                    setattr(module, name, b.contiguous(memory_format=fmt))
    return model


def match_gradient_layout(model: nn.Module, step: Callable[[], torch.Tensor]) -> int:
    """Give every 5D parameter the strides its gradient comes back with; returns how many changed.

    A weight with size-1 dimensions (a 1x1x1 convolution, an image-pathway point-wise weight) is
    "contiguous" in both memory formats with several stride patterns, and which one its gradient
    gets depends on the kernel that computes it (the convolution algorithm, the thread count).
    DDP lays its gradient buckets out like the parameters and copies every gradient whose strides
    differ ("Grad strides do not match bucket view strides"). So before DDP is built, ``step`` (a
    forward returning a loss) runs once, each parameter takes its gradient's strides, and the
    weights and BN statistics are put back as they were (the global RNG too): training then starts
    from the same state, with buckets that match. Values are unchanged; kernels may differ in the
    last bits, which is why single-process training does not do this.
    """
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        step().backward()
    changed = 0
    with torch.no_grad():
        for p in model.parameters():
            g = p.grad
            dense = g is not None and (g.is_contiguous() or g.is_contiguous(memory_format=torch.channels_last_3d))
            if g is not None and dense and p.dim() == 5 and g.stride() != p.stride():
                p.data = torch.empty_strided(p.shape, g.stride(), dtype=p.dtype, device=p.device).copy_(p.data)
                changed += 1
            p.grad = None
    model.load_state_dict(state)  # copies into the re-laid-out tensors: their strides stay
    return changed


def is_channels_last(model: nn.Module) -> bool:
    """True when every 5D parameter of ``model`` is channels-last (and there is at least one)."""
    weights = [p for p in model.parameters() if p.dim() == 5]
    return bool(weights) and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in weights)


__all__ = ["ENV_SWITCH", "default_channels_last", "is_channels_last", "match_gradient_layout", "set_memory_format"]
