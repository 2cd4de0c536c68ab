"""The training config of a study row that names a model: the study's base config + the model and regime tables.

A Table-2 row differs from the shared recipe (the study's ``train_config``) only in what the
tables already say, so a row names its model and the rest is derived:

- ``model.name``: the model; ``regime``: the row's ``regime:``, else the first regime of the
  table that trains the model from pretrained weights (a row with ``pretrained:``) or from scratch;
- ``sources``: the row's ``sources: [KEY, ...]`` picked from the base's, else for a regime that
  trains on one source the base's source of the model's own modality (its pathway: R2D the
  image source, R(2+1)D the video one), else all of them;
- ``data.epoch_size``: the base's, scaled by the share of its sources the row keeps, so every
  run sees as many examples per source and epoch (a joint epoch holds one share per source);
  mixing ``data.weights`` of sources the row drops are dropped with them;
- ``finetune.convert``: for a pretrained regime, the model's ``pretrained_convert``;
- ``run.name``: the row's id.

Everything else is the base's; a row's ``overrides`` and the study's apply on top (runner).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from unidual.models.table import ModelDef, get_model_def
from unidual.train.config import DataConfig
from unidual.train.regimes import Regime, default_regime, get_regime
from unidual.yamlconfig import ConfigError


def derive_row(
    base: Mapping[str, Any],
    *,
    run_id: str,
    model: str,
    regime: str | None,
    sources: Sequence[str] | None,
    pretrained: bool,
    where: str,
) -> dict[str, Any]:
    """The raw training config (before data locations and overrides) of a ``model:`` row."""
    definition = get_model_def(model)
    entry = get_regime(regime) if regime is not None else default_regime(model, pretrained=pretrained)
    raw = copy.deepcopy(dict(base))
    raw["regime"] = entry.name
    _section(raw, "model", where)["name"] = definition.name
    base_sources = raw.get("sources")
    if not isinstance(base_sources, list) or not all(isinstance(s, Mapping) for s in base_sources):
        raise ConfigError(f"{where}: sources: a model row needs the base's sources as a list (not a file)")
    chosen = _pick_sources(base_sources, definition, entry, sources, where)
    if len(chosen) != len(base_sources):
        data = _section(raw, "data", where)
        size = data.get("epoch_size", DataConfig().epoch_size)
        share = size * len(chosen) / len(base_sources) if isinstance(size, (int, float)) else None
        if share is None or not share.is_integer():
            raise ConfigError(
                f"{where}: data.epoch_size: {size!r} of the base does not split into equal shares "
                f"of its {len(base_sources)} sources"
            )
        data["epoch_size"] = int(share)
        if isinstance(data.get("weights"), Mapping):
            keys = {s.get("key") for s in chosen}
            data["weights"] = {k: w for k, w in data["weights"].items() if k in keys} or None
    raw["sources"] = chosen
    if entry.pretrained and definition.pretrained_convert is not None:
        _section(raw, "finetune", where)["convert"] = definition.pretrained_convert
    _section(raw, "run", where)["name"] = run_id
    return raw


def _section(raw: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    if raw.get(name) is None:
        raw[name] = {}
    if not isinstance(raw[name], dict):
        raise ConfigError(f"{where}: {name} must be a mapping, got {raw[name]!r}")
    return raw[name]


def _pick_sources(
    base: list[Mapping[str, Any]], definition: ModelDef, regime: Regime, keys: Sequence[str] | None, where: str
) -> list[dict[str, Any]]:
    have = [s.get("key") for s in base]
    if keys is not None:
        missing = [k for k in keys if k not in have]
        if missing:
            raise ConfigError(f"{where}: sources: {missing} are not sources of the base config (it has {have})")
        chosen = [s for s in base if s.get("key") in keys]
    elif regime.one_source:
        chosen = [s for s in base if s.get("modality") in definition.pathways]
        if len(chosen) != 1:
            raise ConfigError(
                f"{where}: regime {regime.name!r} trains {definition.name!r} on one "
                f"{' or '.join(definition.pathways)} source; the base config has "
                f"{[s.get('key') for s in chosen]}: name it with sources: [KEY]"
            )
    else:
        chosen = list(base)
    return [copy.deepcopy(dict(s)) for s in chosen]
