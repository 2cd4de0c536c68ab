"""Fold every BatchNorm into the convolution that feeds it (inference only).

Why a run-time trace instead of a graph pattern match: the backbone picks its
pathway with ordinary Python control flow, which `torch.fx` cannot always
trace. Running one example input with forward hooks tells us, for each
BatchNorm call, whether its input *is* (same tensor object) the output of the
convolution that just ran. Such a pair is replaced in place by one convolution
with the BN scale and shift baked in, and the BN by ``nn.Identity``; module
names and nesting are kept, so state-dict keys of untouched layers stay valid.
The folded model is checked against the original on the same input.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class FoldError(RuntimeError):
    """Folding changed the model's output: a conv output was used elsewhere too."""


@dataclass(frozen=True)
class FoldedPair:
    conv: str
    norm: str


def _trace_pairs(model: nn.Module, example: Tensor) -> list[FoldedPair]:
    names = {id(m): n for n, m in model.named_modules()}
    calls: dict[int, int] = {}
    producer: dict[int, int] = {}  # id(output tensor) -> id(conv module)
    keep: list[Tensor] = []  # hold outputs so their ids stay unique during the trace
    links: list[tuple[int, int]] = []

    def on_conv(module: nn.Module, _inputs: tuple, output: Tensor) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        producer[id(output)] = id(module)
        keep.append(output)

    def on_norm(module: nn.Module, inputs: tuple) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        source = producer.get(id(inputs[0]))
        if source is not None:
            links.append((source, id(module)))

    handles = []
    for module in model.modules():
        if isinstance(module, _CONVS):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, _NORMS):
            handles.append(module.register_forward_pre_hook(on_norm))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for conv_id, norm_id in links:
        if calls[conv_id] == 1 and calls[norm_id] == 1:
            pairs.append(FoldedPair(names[conv_id], names[norm_id]))
    return pairs


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _outputs(model: nn.Module, example: Tensor) -> list[Tensor]:
    with torch.no_grad():
        out = model(example)
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    return list(out)


def fold_batchnorm(
    model: nn.Module, example: Tensor, *, inplace: bool = False, atol: float = 1e-3, rtol: float = 1e-3
) -> tuple[nn.Module, list[FoldedPair]]:
    """Return (model with conv+BN pairs folded, the pairs folded). Model goes to eval mode.

    ``example`` is one representative input (any batch size); it drives the
    trace and the before/after check (``atol``/``rtol`` on every output).
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    reference = _outputs(model, example)
    pairs = _trace_pairs(model, example)
    for pair in pairs:
        # _trace_pairs hooked only _CONVS and _NORMS
        conv = cast(_ConvNd, model.get_submodule(pair.conv))
        norm = cast(_BatchNorm, model.get_submodule(pair.norm))
        _set_submodule(model, pair.conv, fuse_conv_bn_eval(conv, norm))
        _set_submodule(model, pair.norm, nn.Identity())
    folded = _outputs(model, example)
    for before, after in zip(reference, folded):
        if not torch.allclose(before, after, atol=atol, rtol=rtol):
            diff = (before - after).abs().max().item()
            raise FoldError(f"conv+BN folding changed the output (max abs diff {diff:.3g})")
    return model, pairs
