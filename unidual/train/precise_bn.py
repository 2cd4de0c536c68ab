"""Precise BatchNorm statistics: recompute every BN's running averages after training, per pathway.

A UniDual network trains each pathway with its own batch statistics, and in UniDual-Aux the
video pathway's batches mix real clips with inflated images (the image pathway's mix images
with single frames). At evaluation, though, each pathway sees only its own modality, normalised
by running averages that mixed everything. Like PySlowFast's precise BN (``BN.USE_PRECISE_STATS``),
:func:`recompute_bn_statistics` replaces those averages by exact means over a number of training
batches -- each source run alone through the pathway it takes at inference, so every BN ends up
with the statistics of what it will see at test time. A BN shared by both pathways (the default
UniDual layout) gets the average over both modalities; with ``pathway_bn_stats`` each pathway's
statistics come from its own modality only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

Batch = Mapping[str, Mapping[str, Tensor]]  # {source key: {"input": ..., "label": ...}}


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, batches: Iterable[Batch], device: torch.device | str = "cpu") -> int:
    """Reset every BN's running statistics to the plain average over ``batches``; returns the forwards run.

    Parameters are untouched (no gradient, no optimiser); the model's train/eval mode is restored.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    saved = [tuple(t.clone() for t in _running_stats(m)) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every forward counts equally
    model.train()
    forwards = 0
    try:
        for batch in batches:
            for part in batch.values():
                if len(part["label"]):
                    model(part["input"].to(device))  # its inference pathway: 4D images, 5D clips
                    forwards += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        if forwards == 0:  # nothing seen: keep the old averages rather than reset ones
            for m, old in zip(norms, saved):
                for t, value in zip(_running_stats(m), old):
                    t.copy_(value)
        model.train(was_training)
    return forwards


def _running_stats(m: _BatchNorm) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, variance and count of a BN that tracks them (torch types them Optional for one that does not)."""
    assert m.running_mean is not None and m.running_var is not None and m.num_batches_tracked is not None
    return m.running_mean, m.running_var, m.num_batches_tracked
