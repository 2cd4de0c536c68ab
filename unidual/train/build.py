"""Everything a training run is built from its config: data, model, optimiser.

Each builder is a function of the config (and the process's place in the job), so a test or a
benchmark can build one piece without a trainer; :class:`~unidual.train.trainer.Trainer` calls
them in a fixed order (data, model, optimiser) because model initialisation draws from the
seeded RNG.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from unidual import checkpoint as ckpt
from unidual.data import build_dataset
from unidual.data.errors import DataError
from unidual.data.formats import index_source
from unidual.data.labelparts import part_indices
from unidual.data.labelspace import Relabelled, map_classes
from unidual.data.listing import Index
from unidual.data.mixing import MixedBatch, MixedDataset, MixedSampler
from unidual.data.mixup import Mixer
from unidual.data.utils import Spread
from unidual.models import ImageVideoNet, create_model, get_model_def
from unidual.models.channels_last import choose_channels_last
from unidual.models.memory import match_gradient_layout
from unidual.models.surgery import architecture_mismatch, load_backbone
from unidual.train import distributed as D
from unidual.train.compiled import CompiledModel, enable_compile_caches
from unidual.train.config import ConfigError, TrainConfig
from unidual.train.errors import TrainingError
from unidual.train.inputs import to_device
from unidual.train.objectives import LossModule, Objective
from unidual.train.optim import build_optimizer, head_parameters
from unidual.train.precision import configure_cuda
from unidual.train.schedule import WarmupDecay, make_scheduler, scaled_lr
from unidual.train.schedule import from_config as schedule_from_config
from unidual.train.skips import SkipBudget

PROBE_FILES = 32  # files tried per source before training: all unreadable -> the source is refused


def join_job(cfg: TrainConfig, env: D.DistEnv) -> torch.device:
    """This process's device (``run.device``), its place in the process group, and the CUDA kernel policy."""
    try:
        device = D.resolve_device(cfg.run.device, env)
    except RuntimeError as exc:
        raise TrainingError(f"run.device={cfg.run.device}: {exc}") from None
    D.setup(env, device, timeout_s=cfg.run.dist_timeout_s)
    configure_cuda(device, cudnn_benchmark=cfg.run.cudnn_benchmark, tf32=cfg.run.tf32)
    return device


def default_run_dir(cfg: TrainConfig) -> Path:
    name = cfg.run.name or (f"{cfg.regime}-{cfg.model.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}")
    return Path(cfg.run.out) / name


# --------------------------------------------------------------------------- data
@dataclass
class DataParts:
    specs: dict[str, Any]  # source key -> SourceSpec
    modalities: dict[str, str]
    train_sets: dict[str, Any]
    test_sets: dict[str, Any]
    classes: dict[str, list[str]]  # each source's own classes (labels.json, the checkpoint's label maps)
    heads: dict[str, str]  # source -> the source whose head it trains (``head:``); its labels are that head's
    sampler: MixedSampler
    mixed: MixedDataset
    skips: SkipBudget
    spares: dict[str, dict[str, Any]]  # a readable training example per source (MixedBatch.filled)
    norms: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]  # (mean, std) per source, for uint8 inputs
    micro_per_epoch: int  # micro-batches per epoch on this process
    updates_per_epoch: int

    def label_maps(self) -> dict[str, dict[str, Any]]:
        """``{key: {"modality", "classes"[, "head"]}}`` as labels.json and checkpoints store them (a source
        with ``head:`` keeps its own classes, mapped to the head's by name)."""
        return {
            k: {"modality": self.modalities[k], "classes": c, **({"head": self.heads[k]} if k in self.heads else {})}
            for k, c in self.classes.items()
        }


def build_data(cfg: TrainConfig, env: D.DistEnv) -> DataParts:
    """Train and test sets of every source, each source probed, and the mixing sampler of this rank."""
    specs = {s.key: s for s in cfg.sources}
    indices = D.main_then_agree(lambda: list_files(specs), (DataError,))  # only rank 0 scans the disk
    # uint8 training inputs, normalised on the training device (unidual.train.inputs.to_device)
    train_sets = {k: build_dataset(s, "train", index=indices[k]["train"], normalise=False) for k, s in specs.items()}
    classes = {k: list(ds.classes) for k, ds in train_sets.items()}
    spares: dict[str, dict[str, Any]] = {}
    for k, ds in train_sets.items():
        if len(ds) == 0:
            raise TrainingError(f"source {k!r} ({specs[k].root}): the train split has no examples")
        spares[k] = probe(k, ds, specs[k].root)
    test_sets: dict[str, Any] = {}
    for k, s in specs.items():
        test_sets[k] = build_dataset(s, "test", classes=classes[k], index=indices[k]["test"])
    heads = {k: s.head for k, s in specs.items() if s.head}
    for k, head in heads.items():  # shared label space: the source seen through the head's classes
        label_map = map_classes(classes[k], classes[head], source=k, head=head, unmatched=specs[k].head_unmatched)
        train_sets[k], test_sets[k] = Relabelled(train_sets[k], label_map), Relabelled(test_sets[k], label_map)
        if len(train_sets[k]) == 0:
            raise TrainingError(f"source {k!r}: no train example of a class head {head!r} has")
        spares[k] = probe(k, train_sets[k], specs[k].root)  # labelled in the head's classes
        if label_map.dropped and env.is_main:
            print(
                f"unidual train: source {k!r}: {len(label_map.dropped)} classes not in head {head!r} dropped "
                f"({train_sets[k].dropped_examples} train examples)",
                file=sys.stderr,
            )
    if cfg.data.eval_limit is not None:
        test_sets = {k: Spread(ds, cfg.data.eval_limit) for k, ds in test_sets.items()}
    sampler = train_sampler(cfg, train_sets, env, epoch_size=cfg.data.epoch_size, seed=cfg.run.seed)
    micro = len(sampler)
    if micro < 1:
        raise TrainingError(
            f"data.epoch_size={cfg.data.epoch_size} gives no batch of {cfg.optim.batch_size} x "
            f"{env.world_size} processes"
        )
    return DataParts(
        specs=specs,
        modalities={k: s.modality for k, s in specs.items()},
        train_sets=train_sets,
        test_sets=test_sets,
        classes=classes,
        heads=heads,
        sampler=sampler,
        mixed=MixedDataset(train_sets),
        skips=SkipBudget(list(specs), cfg.data.max_skipped, cfg.data.max_skipped_fraction),
        spares=spares,
        norms={k: (tuple(ds.plan.mean), tuple(ds.plan.std)) for k, ds in train_sets.items()},
        micro_per_epoch=micro,
        updates_per_epoch=math.ceil(micro / cfg.optim.accumulate),
    )


def train_sampler(
    cfg: TrainConfig, train_sets: dict[str, Any], env: D.DistEnv, *, epoch_size: int, seed: int
) -> MixedSampler:
    """The mixing sampler over the train sets (training and precise BN: the same composition and balance)."""
    balance = {k: s.balance for k, s in zip(cfg.source_keys, cfg.sources) if s.balance}
    return MixedSampler(
        {k: len(ds) for k, ds in train_sets.items()},
        batch_size=cfg.optim.batch_size,
        epoch_size=epoch_size,
        weights=cfg.data.weights,
        seed=seed,
        rank=env.rank,
        world_size=env.world_size,
        labels={k: train_sets[k].labels for k in balance},
        balance=balance,
    )


def mixers(
    cfg: TrainConfig, classes: dict[str, list[str]], heads: dict[str, str]
) -> tuple[dict[str, Mixer], dict[str, int]]:
    """Per source: its :class:`Mixer` (only the sources that mix) and the class count of the head it trains."""
    out = {}
    for s in cfg.sources:
        t = s.transform
        mixer = Mixer(mixup=t.mixup, cutmix=t.cutmix, mix_prob=t.mix_prob)
        if mixer.active:
            out[s.key] = mixer
    return out, {k: len(classes[heads.get(k, k)]) for k in classes}


def list_files(specs: dict[str, Any]) -> dict[str, dict[str, Index]]:
    """Every source's train and test files (the test split labelled with the train split's classes).

    Listing a large source stats every file (1.28 M for ImageNet): the trainer has rank 0 do it
    once and sends the lists to the other ranks.
    """
    out: dict[str, dict[str, Index]] = {}
    for key, spec in specs.items():
        train = index_source(spec, "train", None)
        out[key] = {"train": train, "test": index_source(spec, "test", list(train.classes))}
    return out


def example_batch(data: DataParts) -> MixedBatch:
    """A micro-batch shaped like the first one the sampler draws, made of the sources' spare examples."""
    counts = data.sampler.step_counts(0)
    drawn = MixedBatch(sub={}, skipped=[("", "")] * sum(counts.values()),
                       skipped_sources=[k for k, n in counts.items() for _ in range(n)])  # fmt: skip
    return drawn.filled(data.spares, list(data.specs))


def probe(key: str, dataset: Any, root: str) -> dict[str, Any]:
    """The first readable example of a source (up to PROBE_FILES tried): a source none of whose files
    can be read is refused before any training."""
    n = len(dataset)
    tried = sorted({int(i) for i in np.linspace(0, n - 1, num=min(PROBE_FILES, n))})
    failures: list[str] = []
    with torch.random.fork_rng(devices=[]):  # reading draws crops: keep the run's RNG stream untouched
        for i in tried:
            try:
                return dict(dataset[i])
            except Exception as exc:  # any unreadable file counts
                files = getattr(dataset, "files", None)
                failures.append(f"{files[i] if files is not None else i}: {exc}")
    every = "every file" if len(tried) == n else f"all {len(tried)} files tried (of {n})"
    raise DataError(
        f"source {key!r} ({root}): {every} unreadable, e.g. {failures[0]}; check it with `unidual data check`"
    )


# --------------------------------------------------------------------------- model
@dataclass
class ModelParts:
    model: ImageVideoNet  # the network itself (checkpoints, validation)
    objective: Objective
    train_module: nn.Module  # LossModule, DDP-wrapped on several processes: what a training step calls
    compiled: CompiledModel | None
    finetune_missing: list[str]  # head keys left at init when finetuning


def model_for_config(cfg: TrainConfig, heads: dict[str, int], channels_last: bool | None = None) -> ImageVideoNet:
    """The untrained model a training config describes, with ``heads`` {source key: classes}.

    Sources with ``head:`` get no head of their own: leave them out of ``heads``. ``channels_last``:
    the layout chosen for ``run.channels_last`` (None: the setting itself, with ``auto`` left to the
    process default).
    """
    options = dict(cfg.model.options)
    if get_model_def(cfg.model.name).heads_by_modality:
        options["modalities"] = {k: m for k, m in cfg.modalities.items() if k in heads}
    clips = [s.clip.frames for s in cfg.sources if s.modality == "video"]
    frames = cfg.model.frames or (clips[0] if clips else None)  # static clips as long as the video clips
    if frames is not None:  # else create_model's own default
        options["frames"] = frames
    return create_model(
        cfg.model.name,
        depth=cfg.model.depth,
        width=cfg.model.width,
        heads=heads,
        channels_last=channels_last if channels_last is not None else _fixed(cfg.run.channels_last),
        dropout=cfg.model.dropout,
        zero_init_residual=cfg.model.zero_init_residual,
        **options,
    )


def label_parts_of(data: DataParts) -> dict[str, dict[str, list[int]]]:
    """``run.label_parts``: the part indices of each head's classes that read ``"<class> <motion>"``."""
    return label_parts_for({k: c for k, c in data.classes.items() if k not in data.heads})


def label_parts_for(head_classes: Mapping[str, Sequence[str]]) -> dict[str, dict[str, list[int]]]:
    """``label_parts_of`` from the class names alone (``{head source: classes}``), so that a study can
    check a run's ``run.label_parts`` before it trains anything."""
    parts = {k: part_indices(c) for k, c in head_classes.items()}
    found = {k: p for k, p in parts.items() if p is not None}
    if not found:
        raise ConfigError(
            "run.label_parts: no source has '<class> <motion>' class names (two parts, split at the last space)"
        )
    return found


def _fixed(setting: bool | str) -> bool | None:
    return setting if isinstance(setting, bool) else None


def build_model(cfg: TrainConfig, data: DataParts, device: torch.device, env: D.DistEnv, *, resume: bool) -> ModelParts:
    """The model (in the memory format ``run.channels_last`` picks: rank 0 measures, all ranks take its
    answer; heads for the sources without ``head:``), its objective and the training module; under DDP
    the parameters are first laid out like their gradients (one dry step on the sources' spare
    examples) so DDP's buckets match them."""
    layout = D.main_then_agree(lambda: choose_channels_last(cfg.run.channels_last, device), (RuntimeError,))
    if env.is_main and layout.source == "measured":
        print(f"unidual train: {layout.describe()}", file=sys.stderr)
    try:
        heads = {k: len(c) for k, c in data.classes.items() if k not in data.heads}
        model = model_for_config(cfg, heads, layout.channels_last)
    except (TypeError, ValueError) as exc:  # unknown model.options, bad values: the config's fault
        raise ConfigError(f"model: {exc}") from None
    missing = load_pretrained(cfg, model) if cfg.finetune.checkpoint and not resume else []
    model = model.to(device)
    objective = Objective.from_config(cfg, label_parts_of(data) if cfg.run.label_parts else None)
    if env.enabled:
        example = to_device(example_batch(data).sub, device, data.norms)
        match_gradient_layout(model, lambda: LossModule(model, objective)(example, torch.Generator())[0])
    train_module = D.wrap(LossModule(model, objective), env, device, sync_bn=cfg.run.sync_bn)
    loss_module = cast(LossModule, D.unwrap(train_module))
    model = cast(ImageVideoNet, loss_module.model)  # SyncBatchNorm conversion may replace modules; not compiled yet
    compiled: CompiledModel | None = None
    if cfg.run.compile:  # the training step only; checkpoints, validation and eval use the plain model
        cache = enable_compile_caches()
        compiled = CompiledModel(
            model, backend=cfg.run.compile_backend, warn=None if env.is_main else (lambda msg: None)
        )  # rank 0 warns
        loss_module.model = compiled
        if env.is_main:
            print(f"run.compile: {cfg.run.compile_backend}, kernel cache {cache}", file=sys.stderr)
    return ModelParts(model, objective, train_module, compiled, missing)


def load_pretrained(cfg: TrainConfig, model: ImageVideoNet) -> list[str]:
    """Copy ``finetune.checkpoint``'s backbone into ``model``; returns the keys left at init (new heads)."""
    source = cfg.finetune.checkpoint
    assert source is not None
    payload = ckpt.load_checkpoint(source, map_location="cpu")
    differ = architecture_mismatch(payload["model_spec"], model.spec)
    if differ:  # bn_eps / maxpool are in no tensor: copying anyway would silently compute something else
        raise TrainingError(
            f"{source}: its backbone differs from the configured {cfg.model.name} "
            f"({'; '.join(differ)}); set the model to match"
        )
    ft = cfg.finetune
    try:
        auto = ft.convert == "auto"
        convert = get_model_def(cfg.model.name).pretrained_convert if auto else ft.convert
        return load_backbone(
            model, payload["model"], convert=convert, inflate_mode=ft.inflate_mode, own_pathway_first=auto
        )
    except (ValueError, RuntimeError) as exc:
        raise TrainingError(
            f"{source}: cannot load its backbone into {cfg.model.name} (finetune.convert={ft.convert}): {exc}"
        ) from exc


# --------------------------------------------------------------------------- optimiser
@dataclass
class OptimParts:
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch LR scheduler stepped once per update
    schedule: WarmupDecay
    lr: float  # the base LR after batch scaling
    total_updates: int


def build_optim(cfg: TrainConfig, model: nn.Module, updates_per_epoch: int, global_batch: int) -> OptimParts:
    o = cfg.optim
    lr = scaled_lr(o.lr, global_batch, o.reference_batch)
    optimizer = build_optimizer(  # the defaults: exactly torch.optim.SGD(model.parameters(), ...)
        model,
        name=o.name,
        lr=lr,
        momentum=o.momentum,
        weight_decay=o.weight_decay,
        nesterov=o.nesterov and o.momentum > 0,
        betas=o.betas,
        decay_norm_and_bias=o.decay_norm_and_bias,
        backbone_lr_mult=o.backbone_lr_mult,
        new_params=head_parameters(model) if o.backbone_lr_mult != 1 else (),
    )
    schedule = schedule_from_config(cfg.schedule, updates_per_epoch)
    total = schedule.total_steps
    if cfg.run.max_steps is not None:
        total = min(total, cfg.run.max_steps)
    return OptimParts(optimizer, make_scheduler(optimizer, schedule), schedule, lr, total)
