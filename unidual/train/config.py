"""Typed training configuration: YAML file + ``key=value`` overrides -> :class:`TrainConfig`.

A config file is a nested mapping whose sections mirror the dataclasses below.
Every key is checked: an unknown key, a wrong type or a bad choice raises
:class:`ConfigError` naming the key and the file (or "command line"), because a
silently ignored typo (``optim.lrr``) costs a whole training run.

``base: other.yaml`` (a path relative to the file) merges the file over another
one, so the paper configs share one base. Overrides use dotted keys and YAML
scalars: ``optim.lr=0.1 schedule.kind=cosine sources.0.root=/data/k400``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from unidual.data.errors import DataError
from unidual.data.sourcefile import absolute_paths, read_source_file
from unidual.data.sources import SourceSpec
from unidual.models.resnet import DEPTHS
from unidual.models.table import get_model_def, models_for_regime
from unidual.yamlconfig import ConfigError, apply_override, read_yaml
from unidual.yamlconfig import from_dict as build_dataclass


@dataclass
class ModelConfig:
    """Arguments of ``create_model``; ``options`` holds the rest (maxpool, layout, ...)."""

    name: str = "unidual_aux"
    depth: int = 18
    width: float = 1.0
    frames: int | None = None  # static-clip length for inflated images; None: the video sources' clip length
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """SGD with momentum. ``lr`` is the LR at ``reference_batch`` examples per update.

    The LR actually used is ``lr * global_batch / reference_batch`` (linear scaling,
    global_batch = batch_size x accumulate x world size); ``reference_batch: null``
    uses ``lr`` unchanged whatever the batch.
    """

    lr: float = 0.01
    reference_batch: int | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    batch_size: int = 16  # examples per process per forward
    accumulate: int = 1  # forwards per optimiser update (gradient accumulation)
    clip_grad_norm: float | None = None


@dataclass
class ScheduleConfig:
    """Per-iteration LR: linear warm-up, then step decay (x gamma every ``step_epochs``) or cosine."""

    epochs: float = 45
    warmup_epochs: float = 10
    kind: Literal["step", "cosine", "constant"] = "step"
    step_epochs: float = 10
    gamma: float = 0.1
    warmup_start: float = 0.0  # LR factor at the very first iteration
    min_lr_factor: float = 0.0  # cosine floor, as a fraction of the LR


@dataclass
class AuxConfig:
    """UniDual-Aux losses: images -> video pathway -> ``{k}_aux``, frames -> image pathway -> ``{k}_aux``."""

    weight: float = 1.0  # multiplies both auxiliary terms
    inflated_weight: float = 1.0  # images inflated to static clips -> video pathway -> image task
    frame_weight: float = 1.0  # one frame per clip -> image pathway -> video task
    normalize: Literal["examples", "terms"] = "examples"  # loss / N examples, or / weighted number of terms
    routing: Literal["both", "random"] = "both"
    p: float = 0.5  # "random": probability that an example takes the other pathway (aux loss) instead
    frame: Literal["random", "middle"] = "random"  # which frame of a clip feeds the image pathway


@dataclass
class DataConfig:
    """How sources are mixed; an epoch is a number of examples, as in the paper."""

    epoch_size: int = 1_000_000
    weights: dict[str, float] | None = None  # sampling share per source key; None: equal proportion
    num_workers: int = 0
    eval_batch_size: int = 32  # views per forward during validation
    eval_limit: int | None = None  # validate on the first N test examples of each source (None: all)
    precise_bn_batches: int = 0  # before each validation, recompute BN statistics from N training batches (0: off)
    # skip budget: training stops once a source has skipped more unreadable examples than this
    max_skipped: int | None = None  # count per source over the run (None: no count limit)
    max_skipped_fraction: float = 0.1  # share of a source's drawn examples (checked once it drew 20)


@dataclass
class FinetuneConfig:
    """Start from pretrained weights: backbone from ``checkpoint`` (file or run dir), converted if needed.

    Required by regime ``finetune``; any other regime may use it too (e.g. a checkpoint written by
    ``unidual convert``). ``convert: auto`` applies the model's own conversion (its
    ``pretrained_convert`` in the model table) to whatever the checkpoint lacks -- for r2d / unidual
    from an R(2+1)D that deflates the image pathway from it; ``inflate`` / ``deflate`` force one; null
    copies tensors of equal shape only. ``inflate_mode``: ``center`` puts a 1×1 filter on the
    middle tap (the network equals the 2D one frame by frame), ``mean`` spreads it as w/t over
    the taps (I3D's inflation, which the paper cites).
    """

    checkpoint: str | None = None
    convert: Literal["auto", "inflate", "deflate"] | None = "auto"
    inflate_mode: Literal["center", "mean"] = "center"


@dataclass
class RunConfig:
    out: str = "runs"
    name: str | None = None  # run directory name; None: <regime>-<model>-<timestamp>
    seed: int = 0
    device: str = "auto"  # "auto": cuda if available, else cpu
    amp: Literal["off", "bf16", "fp16"] = "off"  # CUDA only; refused on CPU
    sync_bn: bool = False  # SyncBatchNorm under DDP
    eval_every: int = 1  # epochs between validations (0: only at the end)
    save_every: int = 0  # also checkpoint every N updates mid-epoch (0: only at epoch ends)
    log_every: int = 10  # updates between metrics.jsonl train records
    tensorboard: bool = False
    plots: bool = True
    progress: bool = True
    max_steps: int | None = None  # stop after N updates (smoke tests); None: the full schedule
    channels_last: bool = True  # conv weights/activations channels-last (NTHWC): faster, values to rounding
    compile: bool = False  # torch.compile the training step (cached kernels, eager fallback; docs/performance.md)
    compile_backend: str = "inductor"  # torch.compile backend ("inductor"; "eager"/"aot_eager" to debug)


@dataclass
class TrainConfig:
    regime: Literal["separate", "finetune", "multitask", "unidual", "unidual_aux"] = "unidual_aux"
    sources: list[SourceSpec] = field(default_factory=list)  # checked by unidual.data's SourceSpec
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    aux: AuxConfig = field(default_factory=AuxConfig)
    data: DataConfig = field(default_factory=DataConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def source_keys(self) -> list[str]:
        return [s.key for s in self.sources]

    @property
    def modalities(self) -> dict[str, str]:
        return {s.key: s.modality for s in self.sources}


# --------------------------------------------------------------------------- loading


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    data: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Read ``path`` (or use ``data``), apply ``key=value`` overrides, validate, return the config."""
    if path is not None:
        raw, where = read_yaml(Path(path)), str(path)
    else:
        raw, where = copy.deepcopy(dict(data or {})), "<dict>"
    for text in overrides:
        apply_override(raw, text)
    if isinstance(raw.get("sources"), list):  # inline: relative paths that exist are stored absolute
        raw["sources"] = [absolute_paths(d) if isinstance(d, dict) else d for d in raw["sources"]]
    if isinstance(raw.get("sources"), str):
        raw["sources"] = _sources_file(raw["sources"], Path(path).parent if path is not None else None, where)
    cfg = from_dict(raw, where)
    validate(cfg, where)
    return cfg


def _sources_file(ref: str, folder: Path | None, where: str) -> list[dict[str, Any]]:
    """``sources: FILE``: the sources.yaml ``data check`` reads, beside the config first, else the working directory."""
    candidates = [Path(ref)] if Path(ref).is_absolute() or folder is None else [folder / ref, Path(ref)]
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        raise ConfigError(f"{where}: sources: {ref!r} not found (looked for {' or '.join(map(str, candidates))})")
    try:
        return read_source_file(found)
    except DataError as exc:
        raise ConfigError(f"{where}: sources: {exc}") from exc


def from_dict(raw: Mapping[str, Any], where: str = "<dict>") -> TrainConfig:
    """Build :class:`TrainConfig` from a nested mapping; unknown keys and wrong types raise."""
    return build_dataclass(TrainConfig, raw, where)


# --------------------------------------------------------------------------- semantic checks


def validate(cfg: TrainConfig, where: str = "<dict>") -> None:
    """Cross-field checks; errors name the offending key."""

    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{where}: {key}: {msg}")

    if not cfg.sources:
        fail("sources", "at least one data source is required")
    keys = cfg.source_keys  # each source was checked by SourceSpec while building
    if len(set(keys)) != len(keys):
        fail("sources", f"source keys must be unique, got {keys}")

    modalities = set(cfg.modalities.values())
    try:
        definition = get_model_def(cfg.model.name)
    except ValueError as exc:
        fail("model.name", str(exc))
    if cfg.regime not in definition.regimes:
        fail(
            "model.name", f"regime {cfg.regime!r} trains one of {models_for_regime(cfg.regime)}, got {cfg.model.name!r}"
        )
    if cfg.regime in ("separate", "finetune") and len(cfg.sources) != 1:
        fail("sources", f"regime {cfg.regime!r} trains on exactly one source, got {len(cfg.sources)}")
    if not set(definition.needs_modalities) <= modalities:
        fail(
            "sources",
            f"model {cfg.model.name!r} needs at least one {' and one '.join(definition.needs_modalities)} source",
        )
    if cfg.regime == "finetune" and not cfg.finetune.checkpoint:
        fail("finetune.checkpoint", "regime 'finetune' needs the pretrained checkpoint (file or run dir)")
    if cfg.finetune.convert not in (None, "auto") and not cfg.finetune.checkpoint:
        fail("finetune.convert", "converts the weights of finetune.checkpoint, which is not set")
    if cfg.data.weights is not None:
        extra = set(cfg.data.weights) - set(keys)
        if extra:
            fail("data.weights", f"no source named {sorted(extra)} (sources: {keys})")
        if any(w < 0 for w in cfg.data.weights.values()) or not any(cfg.data.weights.values()):
            fail("data.weights", "weights must be >= 0 with at least one > 0")

    _positive(fail, "model.depth", cfg.model.depth)
    if cfg.model.depth not in DEPTHS:
        fail("model.depth", f"unsupported depth {cfg.model.depth}; choose one of {sorted(DEPTHS)}")
    if not _valid_device(cfg.run.device):
        fail("run.device", f"must be auto, cpu, cuda or cuda:N, got {cfg.run.device!r}")
    _positive(fail, "model.width", cfg.model.width)
    if cfg.model.frames is not None:
        _positive(fail, "model.frames", cfg.model.frames)
    reserved = {"frames", "modalities"} & set(cfg.model.options)
    if reserved:
        fail("model.options", f"{sorted(reserved)} are set by the trainer (use model.frames)")
    _positive(fail, "optim.lr", cfg.optim.lr)
    if cfg.optim.reference_batch is not None:
        _positive(fail, "optim.reference_batch", cfg.optim.reference_batch)
    _positive(fail, "optim.batch_size", cfg.optim.batch_size)
    _positive(fail, "optim.accumulate", cfg.optim.accumulate)
    if not 0 <= cfg.optim.momentum < 1:
        fail("optim.momentum", f"must be in [0, 1), got {cfg.optim.momentum}")
    if cfg.optim.weight_decay < 0:
        fail("optim.weight_decay", f"must be >= 0, got {cfg.optim.weight_decay}")
    _positive(fail, "schedule.epochs", cfg.schedule.epochs)
    if not 0 <= cfg.schedule.warmup_epochs <= cfg.schedule.epochs:
        fail(
            "schedule.warmup_epochs", f"must be in [0, epochs={cfg.schedule.epochs}], got {cfg.schedule.warmup_epochs}"
        )
    _positive(fail, "schedule.step_epochs", cfg.schedule.step_epochs)
    if not 0 < cfg.schedule.gamma <= 1:
        fail("schedule.gamma", f"must be in (0, 1], got {cfg.schedule.gamma}")
    for key, v in (
        ("schedule.warmup_start", cfg.schedule.warmup_start),
        ("schedule.min_lr_factor", cfg.schedule.min_lr_factor),
    ):
        if not 0 <= v <= 1:
            fail(key, f"must be in [0, 1], got {v}")
    for key in ("weight", "inflated_weight", "frame_weight"):
        if getattr(cfg.aux, key) < 0:
            fail(f"aux.{key}", f"must be >= 0, got {getattr(cfg.aux, key)}")
    if not 0 <= cfg.aux.p <= 1:
        fail("aux.p", f"must be in [0, 1], got {cfg.aux.p}")
    _positive(fail, "data.epoch_size", cfg.data.epoch_size)
    _positive(fail, "data.eval_batch_size", cfg.data.eval_batch_size)
    if cfg.data.max_skipped is not None and cfg.data.max_skipped < 0:
        fail("data.max_skipped", f"must be >= 0 or null, got {cfg.data.max_skipped}")
    if not 0 <= cfg.data.max_skipped_fraction <= 1:
        fail("data.max_skipped_fraction", f"must be in [0, 1], got {cfg.data.max_skipped_fraction}")
    if cfg.data.num_workers < 0:
        fail("data.num_workers", "must be >= 0")
    if cfg.data.precise_bn_batches < 0:
        fail("data.precise_bn_batches", "must be >= 0 (0 turns precise BN off)")
    if cfg.run.eval_every < 0 or cfg.run.save_every < 0 or cfg.run.log_every < 1:
        fail("run", "eval_every and save_every must be >= 0, log_every >= 1")
    if cfg.run.max_steps is not None:
        _positive(fail, "run.max_steps", cfg.run.max_steps)


def _valid_device(name: str) -> bool:
    """Devices the trainer can run on; anything else would only fail once the data is indexed."""
    kind, _, index = name.partition(":")
    if name in ("auto", "cpu", "mps"):
        return True
    return kind == "cuda" and (not index or index.isdigit())


def _positive(fail, key: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        fail(key, f"must be > 0, got {value!r}")


def dump_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config (every default spelled out) as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
