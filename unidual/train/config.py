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
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, Union

import yaml

REGIMES = ("separate", "finetune", "multitask", "unidual", "unidual_aux")
# Which models make sense in each regime (a mismatch is almost always a config slip).
REGIME_MODELS: dict[str, tuple[str, ...]] = {
    "separate": ("r2d", "r2plus1d"),
    "finetune": ("r2d", "r2plus1d"),
    "multitask": ("r2d_multitask", "r2plus1d_multitask", "r2d_lstm_multitask", "r2plus1d"),
    "unidual": ("unidual",),
    "unidual_aux": ("unidual_aux",),
}


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and where it came from."""


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

    weight: float = 1.0
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


@dataclass
class FinetuneConfig:
    """Pretrain -> finetune: backbone from ``checkpoint`` (file or run dir), converted if needed."""

    checkpoint: str | None = None
    convert: Literal["inflate", "deflate"] | None = None


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
    compile: bool = False  # torch.compile the model: faster steps, ~1 min compiling per shape (docs/performance.md)


@dataclass
class TrainConfig:
    regime: Literal["separate", "finetune", "multitask", "unidual", "unidual_aux"] = "unidual_aux"
    sources: list[dict[str, Any]] = field(default_factory=list)  # unidual.data SourceSpec dicts
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
        return [s["key"] for s in self.sources]

    @property
    def modalities(self) -> dict[str, str]:
        return {s["key"]: s["modality"] for s in self.sources}


# --------------------------------------------------------------------------- loading

def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    data: Mapping[str, Any] | None = None,
    check_sources: bool = True,
) -> TrainConfig:
    """Read ``path`` (or use ``data``), apply ``key=value`` overrides, validate, return the config."""
    if path is not None:
        raw, where = read_yaml(Path(path)), str(path)
    else:
        raw, where = copy.deepcopy(dict(data or {})), "<dict>"
    for text in overrides:
        apply_override(raw, text)
    if isinstance(raw.get("sources"), str):
        raw["sources"] = _sources_file(raw["sources"], Path(path).parent if path is not None else None, where)
    cfg = from_dict(raw, where)
    validate(cfg, where, check_sources=check_sources)
    return cfg


def _sources_file(ref: str, folder: Path | None, where: str) -> list[dict[str, Any]]:
    """``sources: FILE``: the sources.yaml ``data check`` reads, beside the config first, else the working directory."""
    from unidual.data.errors import DataError
    from unidual.data.sourcefile import read_source_file

    candidates = [Path(ref)] if Path(ref).is_absolute() or folder is None else [folder / ref, Path(ref)]
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        raise ConfigError(f"{where}: sources: {ref!r} not found (looked for {' or '.join(map(str, candidates))})")
    try:
        return read_source_file(found)
    except DataError as exc:
        raise ConfigError(f"{where}: sources: {exc}") from exc


def read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping, with its ``base:`` chain merged underneath."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back on itself")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a path string, got {base!r}")
    parent = read_yaml(path.parent / base, _seen + (path.resolve(),))
    return deep_merge(parent, raw)


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested mappings merge, everything else (lists too) replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict[str, Any], text: str) -> None:
    """Apply one ``dotted.key=value`` (value parsed as a YAML scalar/flow value) in place."""
    if "=" not in text:
        raise ConfigError(f"command line: override {text!r} must look like key=value (e.g. optim.lr=0.1)")
    key, _, value_text = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"command line: override {text!r} has an empty key")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"command line: value of {key!r} is not valid YAML ({exc})") from exc
    node: Any = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), create=True)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"command line: {'.'.join(parts[:-1])!r} is not a section, cannot set {key!r}")


def _child(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"command line: {path!r} goes through a value that is not a section")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list, part: str, path: str) -> int:
    try:
        i = int(part)
    except ValueError:
        raise ConfigError(f"command line: {path!r}: list position must be an integer, got {part!r}") from None
    if not -len(node) <= i < len(node):
        raise ConfigError(f"command line: {path!r}: position {i} out of range (list has {len(node)} items)")
    return i


# --------------------------------------------------------------------------- typed building

def from_dict(raw: Mapping[str, Any], where: str = "<dict>") -> TrainConfig:
    """Build :class:`TrainConfig` from a nested mapping; unknown keys and wrong types raise."""
    return _build(TrainConfig, raw, where, "")


def _build(cls: type, raw: Any, where: str, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {prefix + str(unknown[0])!r} (known in "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _convert(hints[name], value, where, prefix + name)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, key + ".")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {key}: {value!r} fits none of {tp}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, where, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _convert(item, v, where, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return copy.deepcopy(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            # 1e6 in YAML is a string; 1.0e6 a float: accept whole floats for sizes.
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"config type {tp!r} of {key} is not supported")  # programming error


# --------------------------------------------------------------------------- semantic checks

def validate(cfg: TrainConfig, where: str = "<dict>", *, check_sources: bool = True) -> None:
    """Cross-field checks; errors name the offending key."""
    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{where}: {key}: {msg}")

    if not cfg.sources:
        fail("sources", "at least one data source is required")
    keys = []
    for i, src in enumerate(cfg.sources):
        if not isinstance(src.get("key"), str) or not src["key"]:
            fail(f"sources.{i}.key", "every source needs a non-empty string key")
        if src.get("modality") not in ("image", "video"):
            fail(f"sources.{i}.modality", f"must be 'image' or 'video', got {src.get('modality')!r}")
        keys.append(src["key"])
    if len(set(keys)) != len(keys):
        fail("sources", f"source keys must be unique, got {keys}")
    if check_sources:
        _check_source_specs(cfg, where)

    modalities = set(cfg.modalities.values())
    allowed = REGIME_MODELS[cfg.regime]
    if cfg.model.name not in allowed:
        fail("model.name", f"regime {cfg.regime!r} trains one of {list(allowed)}, got {cfg.model.name!r}")
    if cfg.regime in ("separate", "finetune") and len(cfg.sources) != 1:
        fail("sources", f"regime {cfg.regime!r} trains on exactly one source, got {len(cfg.sources)}")
    if cfg.regime in ("unidual", "unidual_aux") and modalities != {"image", "video"}:
        fail("sources", f"regime {cfg.regime!r} needs at least one image and one video source")
    if cfg.regime == "finetune" and not cfg.finetune.checkpoint:
        fail("finetune.checkpoint", "regime 'finetune' needs the pretrained checkpoint (file or run dir)")
    if cfg.regime != "finetune" and cfg.finetune.checkpoint:
        fail("finetune.checkpoint", f"only used by regime 'finetune' (regime is {cfg.regime!r})")
    if cfg.data.weights is not None:
        extra = set(cfg.data.weights) - set(keys)
        if extra:
            fail("data.weights", f"no source named {sorted(extra)} (sources: {keys})")
        if any(w < 0 for w in cfg.data.weights.values()) or not any(cfg.data.weights.values()):
            fail("data.weights", "weights must be >= 0 with at least one > 0")

    _positive(fail, "model.depth", cfg.model.depth)
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
        fail("schedule.warmup_epochs", f"must be in [0, epochs={cfg.schedule.epochs}], got {cfg.schedule.warmup_epochs}")
    _positive(fail, "schedule.step_epochs", cfg.schedule.step_epochs)
    if not 0 < cfg.schedule.gamma <= 1:
        fail("schedule.gamma", f"must be in (0, 1], got {cfg.schedule.gamma}")
    for key, v in (("schedule.warmup_start", cfg.schedule.warmup_start),
                   ("schedule.min_lr_factor", cfg.schedule.min_lr_factor)):
        if not 0 <= v <= 1:
            fail(key, f"must be in [0, 1], got {v}")
    if cfg.aux.weight < 0:
        fail("aux.weight", f"must be >= 0, got {cfg.aux.weight}")
    if not 0 <= cfg.aux.p <= 1:
        fail("aux.p", f"must be in [0, 1], got {cfg.aux.p}")
    _positive(fail, "data.epoch_size", cfg.data.epoch_size)
    _positive(fail, "data.eval_batch_size", cfg.data.eval_batch_size)
    if cfg.data.num_workers < 0:
        fail("data.num_workers", "must be >= 0")
    if cfg.run.eval_every < 0 or cfg.run.save_every < 0 or cfg.run.log_every < 1:
        fail("run", "eval_every and save_every must be >= 0, log_every >= 1")
    if cfg.run.max_steps is not None:
        _positive(fail, "run.max_steps", cfg.run.max_steps)


def _positive(fail, key: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        fail(key, f"must be > 0, got {value!r}")


def _check_source_specs(cfg: TrainConfig, where: str) -> None:
    """Let the data package validate each source dict (its own unknown-key rules)."""
    try:
        from unidual.data.sources import SourceSpec
    except ImportError:  # data package not installed in this checkout: structural checks only
        return
    for i, src in enumerate(cfg.sources):
        try:
            SourceSpec.from_dict(src)
        except Exception as exc:
            raise ConfigError(f"{where}: sources.{i} ({src.get('key')!r}): {exc}") from exc


def dump_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config (every default spelled out) as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
