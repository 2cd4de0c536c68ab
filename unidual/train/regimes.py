"""The training regimes of the paper's Table 2, one typed entry each: every difference between them is a field.

=============  ===========================================================  ===========  ==========
regime         models (``model.name``)                                      sources      pretrained
=============  ===========================================================  ===========  ==========
separate       r2d, r2plus1d                                                exactly one  no
finetune       r2d, r2plus1d                                                exactly one  required
multitask      r2plus1d, r2d_multitask, r2plus1d_multitask,                 any number   no
               r2d_lstm_multitask
unidual        unidual                                                      any number   no
unidual_aux    unidual_aux                                                  any number   no
=============  ===========================================================  ===========  ==========

Which modalities the sources must cover is the model's to say (``needs_modalities`` in the
model table: UniDual needs an image and a video source); what the auxiliary losses do is the
model's too (``aux_heads``). The config checks and the study read these entries; nothing else
compares regime names. Adding a regime is one :func:`register_regime` call.

The table lives in ``train/``, beside the model table but above it: a regime is a way of
*training* (how many sources, whether it starts from a checkpoint, which models it may train),
and ``unidual.models`` builds networks without knowing how they are trained. The entries name
models of the model table, which is checked when an entry registers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from unidual.models.table import get_model_def


@dataclass(frozen=True)
class Regime:
    """What one regime allows; the train config's ``regime:`` names it."""

    name: str
    description: str  # one line (docs/training.md has the table)
    models: tuple[str, ...]  # model names it may train, from the model table
    one_source: bool = False  # exactly one source: the single-task baselines of Table 2
    pretrained: bool = False  # starts from ``finetune.checkpoint``, which it requires (the finetuned rows)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"regime name must be letters, digits and '_', got {self.name!r}")
        if not self.models:
            raise ValueError(f"regime {self.name!r}: models must name at least one model")
        for model in self.models:
            get_model_def(model)  # ValueError naming the registered models


_REGIMES: dict[str, Regime] = {}


def register_regime(regime: Regime, *, replace: bool = False) -> Regime:
    """Add a regime (``replace=True`` to redefine one, e.g. :func:`allow_model`)."""
    if regime.name in _REGIMES and not replace:
        raise ValueError(f"regime {regime.name!r} is already registered")
    _REGIMES[regime.name] = regime
    return regime


def unregister_regime(name: str) -> None:
    _REGIMES.pop(name, None)


def get_regime(name: str) -> Regime:
    if name not in _REGIMES:
        raise ValueError(f"unknown regime {name!r}; choose one of {list(_REGIMES)}")
    return _REGIMES[name]


def regime_names() -> list[str]:
    return list(_REGIMES)


def allow_model(model: str, *regimes: str) -> None:
    """Let ``regimes`` train ``model`` (a model registered outside this file: ``allow_model("r3d", "separate")``)."""
    for name in regimes:
        entry = get_regime(name)
        if model not in entry.models:
            register_regime(dataclasses.replace(entry, models=(*entry.models, model)), replace=True)


def default_regime(model: str, *, pretrained: bool) -> Regime:
    """The first regime of the table that trains ``model``, from pretrained weights or not (a study row's default)."""
    for entry in _REGIMES.values():
        if model in entry.models and entry.pretrained == pretrained:
            return entry
    wanted = "from a pretrained checkpoint" if pretrained else "from scratch"
    raise ValueError(f"no regime trains model {model!r} {wanted} (regimes: {regime_names()})")


# -- the paper's Table 2 groups --------------------------------------------------------------------
register_regime(
    Regime(
        "separate",
        "one model per source: R2D on images or R(2+1)D on videos",
        models=("r2d", "r2plus1d"),
        one_source=True,
    )
)
register_regime(
    Regime(
        "finetune",
        "weights pretrained on the other modality (finetune.checkpoint), converted, new heads, one source",
        models=("r2d", "r2plus1d"),
        one_source=True,
        pretrained=True,
    )
)
register_regime(
    Regime(
        "multitask",
        "one shared network, one head per source, images inflated to static clips",
        models=("r2plus1d", "r2d_multitask", "r2plus1d_multitask", "r2d_lstm_multitask"),
    )
)
register_regime(
    Regime("unidual", "images -> image pathway (1x1), clips -> video pathway (t x 1 x 1)", models=("unidual",))
)
register_regime(
    Regime("unidual_aux", "as unidual, plus the two auxiliary losses", models=("unidual_aux",)),
)
