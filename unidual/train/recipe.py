"""The training recipe's switches (docs/training.md "Recipe") as ``unidual train --check`` prints them.

One list of every switch, so the printed block cannot leave one out: the run-wide keys of
:data:`RUN_SWITCHES` and, per source, :data:`SOURCE_SWITCHES`. Every switch is off by default
(the defaults are the values of a config that sets none of them).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import yaml

from unidual.data.specs import SourceSpec
from unidual.train.config import TrainConfig

RUN_SWITCHES = (
    "optim.label_smoothing",
    "optim.name",
    "optim.betas",
    "optim.decay_norm_and_bias",
    "optim.backbone_lr_mult",
    "model.dropout",
    "model.zero_init_residual",
    "run.ema_decay",
)
SOURCE_SWITCHES = (
    "transform.mixup",
    "transform.cutmix",
    "transform.mix_prob",
    "transform.randaugment",
    "transform.scale",
    "transform.color_jitter",
    "loss_weight",
    "balance",
    "head",
    "head_unmatched",
)


def _get(section: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        section = getattr(section, part)
    return section


def default_of(cls: type, dotted: str) -> Any:
    """The default of a (dotted) field of dataclass ``cls``: ``default_of(SourceSpec, "transform.mixup")``."""
    head, _, rest = dotted.partition(".")
    f = next(f for f in dataclasses.fields(cls) if f.name == head)
    if rest:
        return default_of(typing.get_type_hints(cls)[head], rest)
    if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _flow(value: Any) -> str:
    """A value as YAML flow text: ``0.1``, ``true``, ``null``, ``[0.08, 1.0]``, ``{n: 2, m: 9.0}``."""
    return (
        yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False).strip().removesuffix("...").strip()
    )


def recipe_block(cfg: TrainConfig) -> str:
    """Every recipe switch and its value, as YAML comments; ``*`` marks a switch changed from its default."""
    lines = ['# recipe (docs/training.md "Recipe"; * = changed from the default, which is off)']
    for key in RUN_SWITCHES:
        value = _plain(_get(cfg, key))
        lines.append(f"#  {'*' if value != default_of(TrainConfig, key) else ' '} {key}: {_flow(value)}")
    for i, source in enumerate(cfg.sources):
        parts = []
        for key in SOURCE_SWITCHES:
            value = _plain(_get(source, key))
            mark = "*" if value != default_of(SourceSpec, key) else ""
            parts.append(f"{mark}{key.removeprefix('transform.')} {_flow(value)}")
        lines.append(f"#    sources.{i} ({source.key}): " + ", ".join(parts))
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
