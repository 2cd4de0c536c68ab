"""The optimiser: SGD or AdamW over parameter groups (weight decay on/off, backbone LR multiplier).

With the defaults (``sgd``, decay on every parameter, ``backbone_lr_mult`` 1) this is exactly
``torch.optim.SGD(model.parameters(), ...)``: one group, the same state, the same checkpoints
as before the recipe existed. Otherwise the parameters are split into at most four groups:

* ``decay_norm_and_bias: false`` puts every parameter with at most one dimension or a name
  ending in ``.bias`` (BN scale/shift, linear biases, LSTM biases) into a group with weight
  decay 0 -- timm's ``param_groups_weight_decay`` rule (PySlowFast: ``BN.WEIGHT_DECAY: 0.0``
  on BN parameters, ``SOLVER.ZERO_WD_1D_PARAM`` for the rest);
* ``backbone_lr_mult: r`` gives every parameter *not* named in ``new_params`` (the pretrained
  backbone when starting from ``finetune.checkpoint``) ``r`` times the LR of the new ones (the heads).

Each group stores its ``lr_mult``; the LR schedule (:func:`unidual.train.schedule.make_scheduler`,
a ``LambdaLR``) scales every group's own initial LR by the same factor, so the ratio holds
throughout. :func:`reported_lr` gives the base (new-head) LR for logs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from unidual.models.surgery import TOP_PREFIXES

OPTIMIZERS = ("sgd", "adamw")


def head_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters a finetune start leaves at init (heads, LSTM): ``backbone_lr_mult``'s "new" ones.

    Exactly what :func:`unidual.models.surgery.load_backbone` never copies, and known without
    loading anything, so a resumed run rebuilds the same groups.
    """
    return [name for name, _ in model.named_parameters() if name.startswith(TOP_PREFIXES)]


def no_decay(name: str, param: nn.Parameter) -> bool:
    """timm's rule: 1-D (norm scales and shifts, biases) or named ``*.bias`` -> no weight decay."""
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    decay_norm_and_bias: bool = True,
    backbone_lr_mult: float = 1.0,
    new_params: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Groups ``{"params", "lr", "weight_decay", "lr_mult"}`` in a fixed order (backbone, then new; decay first)."""
    named = dict(model.named_parameters())  # shared parameters appear once
    new = set(new_params)
    unknown = new - set(named) - {n for n, _ in model.named_buffers()}
    if unknown:
        raise ValueError(f"new_params names no parameter of the model: {sorted(unknown)[:3]}")
    if backbone_lr_mult != 1.0 and not new & set(named):
        raise ValueError("backbone_lr_mult needs the new (head) parameters, to know what the backbone is")
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in named.items():
        if not param.requires_grad:
            continue
        decayed = decay_norm_and_bias or not no_decay(name, param)
        groups.setdefault((name in new, decayed), []).append(param)
    out = []
    for is_new, decayed in ((False, True), (False, False), (True, True), (True, False)):
        params = groups.get((is_new, decayed))
        if params:
            mult = 1.0 if is_new else float(backbone_lr_mult)
            out.append(
                {"params": params, "lr": lr * mult, "weight_decay": weight_decay if decayed else 0.0, "lr_mult": mult}
            )
    return out


def build_optimizer(
    model: nn.Module,
    *,
    name: str = "sgd",
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    nesterov: bool = False,
    betas: Sequence[float] = (0.9, 0.999),
    decay_norm_and_bias: bool = True,
    backbone_lr_mult: float = 1.0,
    new_params: Collection[str] = (),
) -> Optimizer:
    """``optim.name`` over the groups of :func:`param_groups`; SGD over ``model.parameters()`` when no group is needed."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if backbone_lr_mult <= 0:
        raise ValueError(f"backbone_lr_mult must be > 0, got {backbone_lr_mult}")
    plain = decay_norm_and_bias and backbone_lr_mult == 1.0
    params: Any = (
        model.parameters()
        if plain
        else param_groups(
            model,
            lr=lr,
            weight_decay=weight_decay,
            decay_norm_and_bias=decay_norm_and_bias,
            backbone_lr_mult=backbone_lr_mult,
            new_params=new_params,
        )
    )
    if name == "adamw":
        b1, b2 = (float(b) for b in betas)
        return torch.optim.AdamW(params, lr=lr, betas=(b1, b2), weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def reported_lr(optimizer: Optimizer) -> float:
    """The current LR of the new parameters (the base LR): group 0's LR over its ``lr_mult``."""
    group = optimizer.param_groups[0]
    return float(group["lr"]) / float(group.get("lr_mult", 1.0))
