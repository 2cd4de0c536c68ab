"""Typed training configuration: YAML file + ``key=value`` overrides -> :class:`TrainConfig`.

A config file is a nested mapping whose sections mirror the dataclasses below.
Every key is checked: an unknown key, a wrong type or a bad choice raises
:class:`ConfigError` naming the key and the file (or "command line"), because a
silently ignored typo (``optim.lrr``) costs a whole training run.

Each section checks its own fields where they are declared (``checked(default, check, ...)``,
the project's one validation style, :mod:`unidual.yamlconfig`); :func:`validate` holds the
checks that join sections: the regime (:mod:`unidual.train.regimes`) against the model and the
sources, the mixing weights against the source keys.

``base: other.yaml`` (a path relative to the file) merges the file over another
one, so the paper configs share one base. Overrides use dotted keys and YAML
scalars: ``optim.lr=0.1 schedule.kind=cosine sources.0.root=/data/k400``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from unidual.data.errors import DataError
from unidual.data.sourcefile import absolute_paths, read_source_file
from unidual.data.specs import SourceSpec
from unidual.models.resnet import DEPTHS
from unidual.models.table import get_model_def
from unidual.train.regimes import get_regime, regime_names
from unidual.yamlconfig import (
    Checked,
    ConfigError,
    FieldError,
    apply_override,
    at_least,
    checked,
    one_of,
    positive,
    read_yaml,
    recheck,
    within,
)
from unidual.yamlconfig import from_dict as build_dataclass

RESERVED_OPTIONS = ("frames", "modalities")  # create_model options the trainer sets from the sources


def _workers(value: int | str) -> str | None:
    if value == "auto" or (isinstance(value, int) and value >= 0):
        return None
    return f"must be a number >= 0 or auto, got {value!r}"


def _known_model(name: str) -> str | None:
    try:
        get_model_def(name)
    except ValueError as exc:
        return str(exc)
    return None


def _free_options(options: Mapping[str, Any]) -> str | None:
    reserved = sorted(set(RESERVED_OPTIONS) & set(options))
    return f"{reserved} are set by the trainer (use model.frames)" if reserved else None


def _device(name: str) -> str | None:
    """Devices the trainer can run on; anything else would only fail once the data is indexed."""
    kind, _, index = name.partition(":")
    if name in ("auto", "cpu", "mps") or (kind == "cuda" and (not index or index.isdigit())):
        return None
    return f"must be auto, cpu, cuda or cuda:N, got {name!r}"


def _sources(sources: list[SourceSpec]) -> str | None:
    keys = [s.key for s in sources]  # each source was checked by SourceSpec while building
    if not keys:
        return "at least one data source is required"
    return f"source keys must be unique, got {keys}" if len(set(keys)) != len(keys) else None


def _betas(betas: list[float]) -> str | None:
    ok = len(betas) == 2 and all(0 <= b < 1 for b in betas)
    return None if ok else f"must be two numbers in [0, 1), got {betas!r}"


def _weights(weights: Mapping[str, float]) -> str | None:
    if any(w < 0 for w in weights.values()) or not any(weights.values()):
        return "weights must be >= 0 with at least one > 0"
    return None


@dataclass
class ModelConfig(Checked):
    """Arguments of ``create_model``; ``options`` holds the rest (maxpool, layout, ...)."""

    name: str = checked("unidual_aux", _known_model)
    depth: int = checked(18, positive, one_of(sorted(DEPTHS)))
    width: float = checked(1.0, positive)
    # static-clip length for inflated images; None: the video sources' clip length
    frames: int | None = checked(None, positive)
    options: dict[str, Any] = checked(dataclasses.MISSING, _free_options, default_factory=dict)
    # recipe (docs/training.md "Recipe"; not in the model spec: eval-mode outputs do not depend on them)
    dropout: float = checked(0.0, within(0, 1, high_open=True))  # dropout before every head (0: off)
    zero_init_residual: bool = False  # each residual block's last BN scale starts at 0


@dataclass
class OptimConfig(Checked):
    """SGD with momentum (or AdamW). ``lr`` is the LR at ``reference_batch`` examples per update.

    The LR actually used is ``lr * global_batch / reference_batch`` (linear scaling,
    global_batch = batch_size x accumulate x world size); ``reference_batch: null``
    uses ``lr`` unchanged whatever the batch. ``adamw`` reads ``betas`` and ignores ``momentum`` /
    ``nesterov``; ``sgd`` refuses ``betas`` other than the default. ``backbone_lr_mult`` scales the
    LR of every parameter ``finetune.checkpoint`` provides (all but the new heads); without a
    checkpoint there is no pretrained backbone and a value other than 1 is refused.
    """

    lr: float = checked(0.01, positive)
    reference_batch: int | None = checked(None, positive)
    momentum: float = checked(0.9, within(0, 1, high_open=True))
    weight_decay: float = checked(1e-4, at_least(0))
    nesterov: bool = False
    batch_size: int = checked(16, positive)  # examples per process per forward
    accumulate: int = checked(1, positive)  # forwards per optimiser update (gradient accumulation)
    clip_grad_norm: float | None = None
    # recipe (docs/training.md "Recipe"); the defaults are exactly torch.optim.SGD(model.parameters(), ...)
    name: Literal["sgd", "adamw"] = "sgd"
    betas: list[float] = checked(dataclasses.MISSING, _betas, default_factory=lambda: [0.9, 0.999])  # adamw
    decay_norm_and_bias: bool = True  # false: no weight decay on BN scales/shifts and biases
    backbone_lr_mult: float = checked(1.0, positive)  # pretrained backbone LR / new heads' LR (finetune only)
    label_smoothing: float = checked(0.0, within(0, 1, high_open=True))  # every cross-entropy term (0: off)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name == "sgd" and [float(b) for b in self.betas] != [0.9, 0.999]:
            raise FieldError("betas", f"are AdamW's (optim.name: adamw); sgd has none, got {self.betas}")


@dataclass
class ScheduleConfig(Checked):
    """Per-iteration LR: linear warm-up, then step decay (x gamma every ``step_epochs``) or cosine."""

    epochs: float = checked(45, positive)
    warmup_epochs: float = 10  # in [0, epochs] (checked below)
    kind: Literal["step", "cosine", "constant"] = "step"
    step_epochs: float = checked(10, positive)
    gamma: float = checked(0.1, within(0, 1, low_open=True))
    warmup_start: float = checked(0.0, within(0, 1))  # LR factor at the very first iteration
    min_lr_factor: float = checked(0.0, within(0, 1))  # cosine floor, as a fraction of the LR

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise FieldError("warmup_epochs", f"must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")


@dataclass
class AuxConfig(Checked):
    """UniDual-Aux losses: images -> video pathway -> ``{k}_aux``, frames -> image pathway -> ``{k}_aux``."""

    weight: float = checked(1.0, at_least(0))  # multiplies both auxiliary terms
    inflated_weight: float = checked(1.0, at_least(0))  # images inflated to static clips -> video pathway
    frame_weight: float = checked(1.0, at_least(0))  # one frame per clip -> image pathway -> video task
    normalize: Literal["examples", "terms"] = "examples"  # loss / N examples, or / weighted number of terms
    routing: Literal["both", "random"] = "both"
    p: float = checked(0.5, within(0, 1))  # "random": probability that an example takes the other pathway instead
    frame: Literal["random", "middle"] = "random"  # which frame of a clip feeds the image pathway


@dataclass
class DataConfig(Checked):
    """How sources are mixed; an epoch is a number of examples, as in the paper."""

    epoch_size: int = checked(1_000_000, positive)
    # sampling share per source key; None: equal proportion
    weights: dict[str, float] | None = checked(None, _weights)
    # loader processes per rank; "auto": 0 on the CPU (the step's threads use every core), on a GPU
    # min(8, cores per local rank - 1)
    num_workers: int | Literal["auto"] = checked("auto", _workers)
    eval_batch_size: int = checked(32, positive)  # views per forward during validation
    eval_limit: int | None = None  # validate on the first N test examples of each source (None: all)
    # before each validation, recompute BN statistics from N training batches (0: off)
    precise_bn_batches: int = checked(0, at_least(0))
    # skip budget: training stops once a source has skipped more unreadable examples than this
    max_skipped: int | None = checked(None, at_least(0))  # count per source over the run (None: no count limit)
    # share of a source's drawn examples (checked once it drew 20)
    max_skipped_fraction: float = checked(0.1, within(0, 1))


@dataclass
class FinetuneConfig(Checked):
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.convert not in (None, "auto") and not self.checkpoint:
            raise FieldError("convert", "converts the weights of finetune.checkpoint, which is not set")


@dataclass
class RunConfig(Checked):
    out: str = "runs"
    name: str | None = None  # run directory name; None: <regime>-<model>-<timestamp>
    seed: int = 0
    device: str = checked("auto", _device)  # "auto": cuda if available, else cpu
    amp: Literal["off", "bf16", "fp16"] = "off"  # autocast dtype; on CPUs allowed but slow (a warning says so)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    eval_every: int = checked(1, at_least(0))  # epochs between validations (0: only at the end)
    save_every: int = checked(0, at_least(0))  # also checkpoint every N updates mid-epoch (0: only at epoch ends)
    log_every: int = checked(10, at_least(1))  # updates between metrics.jsonl train records
    tensorboard: bool = False
    # per source with "<class> <motion>" labels, also the training accuracy of each part (acc_class/, acc_motion/)
    label_parts: bool = False
    plots: bool = True
    progress: bool = True
    max_steps: int | None = checked(None, positive)  # stop after N updates (smoke tests); None: the full schedule
    # conv weights/activations channels-last (NTHWC), contiguous, or "auto": the faster on this machine,
    # measured once and cached (unidual/models/channels_last.py); values agree to rounding
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False  # torch.compile the training step (cached kernels, eager fallback; docs/performance.md)
    compile_backend: str = "inductor"  # torch.compile backend ("inductor"; "eager"/"aot_eager" to debug)
    dist_timeout_s: float = checked(1800.0, positive)  # how long a collective waits for the slowest rank
    cudnn_benchmark: bool = True  # CUDA: let cuDNN time its convolution algorithms per input shape
    tf32: bool = True  # CUDA (Ampere+): TF32 for convolutions and matmuls in fp32 (off: full fp32)
    # exponential moving average of the weights after every update, validated beside them (0: off)
    ema_decay: float = checked(0.0, within(0, 1, high_open=True))


@dataclass
class TrainConfig(Checked):
    regime: str = checked("unidual_aux", one_of(regime_names))  # an entry of unidual.train.regimes
    # checked by unidual.data's SourceSpec, each on its own
    sources: list[SourceSpec] = checked(dataclasses.MISSING, _sources, default_factory=list)
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
    return from_dict(raw, where)


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
    """Build and check :class:`TrainConfig` from a nested mapping: every section's fields, then :func:`validate`."""
    cfg = build_dataclass(TrainConfig, raw, where)
    _check_sections(cfg, where)
    return cfg


# --------------------------------------------------------------------------- checks across sections


def validate(cfg: TrainConfig, where: str = "<dict>") -> None:
    """Check a whole config again (code changed it after loading): every section's fields, then across sections."""
    recheck(cfg, where)
    _check_sections(cfg, where)


def _check_sections(cfg: TrainConfig, where: str) -> None:
    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{where}: {key}: {msg}")

    regime, definition = get_regime(cfg.regime), get_model_def(cfg.model.name)
    if definition.name not in regime.models:
        fail("model.name", f"regime {regime.name!r} trains one of {list(regime.models)}, got {definition.name!r}")
    if regime.one_source and len(cfg.sources) != 1:
        fail("sources", f"regime {regime.name!r} trains on exactly one source, got {len(cfg.sources)}")
    if not set(definition.needs_modalities) <= set(cfg.modalities.values()):
        fail(
            "sources",
            f"model {definition.name!r} needs at least one {' and one '.join(definition.needs_modalities)} source",
        )
    if regime.pretrained and not cfg.finetune.checkpoint:
        fail("finetune.checkpoint", f"regime {regime.name!r} needs the pretrained checkpoint (file or run dir)")
    extra = sorted(set(cfg.data.weights or {}) - set(cfg.source_keys))
    if extra:
        fail("data.weights", f"no source named {extra} (sources: {cfg.source_keys})")
    if cfg.optim.backbone_lr_mult != 1 and not cfg.finetune.checkpoint:
        fail("optim.backbone_lr_mult", "scales a pretrained backbone's LR, and finetune.checkpoint is not set")
    if cfg.model.zero_init_residual and cfg.finetune.checkpoint:
        fail("model.zero_init_residual", "finetune.checkpoint's BN scales replace the zeros (it would do nothing)")
    _check_heads(cfg, fail)


def _check_heads(cfg: TrainConfig, fail: Callable[[str, str], None]) -> None:
    """``sources.i.head``: another source of this run that keeps its own head (no chains)."""
    owners = {s.key: s for s in cfg.sources}
    for i, s in enumerate(cfg.sources):
        if s.head is None:
            continue
        key = f"sources.{i}.head"
        if get_regime(cfg.regime).one_source:
            fail(key, f"regime {cfg.regime!r} trains one source; a shared head needs its owner in the run")
        if s.head == s.key:
            fail(key, f"source {s.key!r} names its own head; remove head or name another source")
        if s.head not in owners:
            fail(key, f"no source named {s.head!r} (sources: {cfg.source_keys})")
        if owners[s.head].head is not None:
            fail(key, f"source {s.head!r} trains head {owners[s.head].head!r} itself; shared heads do not chain")


def dump_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config (every default spelled out) as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
