"""The training loop behind ``unidual train``: every regime, exact resume, rank-0-only files.

One *update* = ``optim.accumulate`` forward/backward passes of ``optim.batch_size``
examples per process, then one SGD step and one LR-schedule step. An epoch is
``data.epoch_size`` examples drawn by the mixing sampler (equal proportion per
source unless ``data.weights`` says otherwise).

Run directory: ``config.yaml`` (resolved), ``labels.json``, ``metrics.jsonl``,
``last.pt`` / ``best.pt`` (atomic, ``weights_only`` loadable), ``loss.png`` /
``accuracy.png`` and, if asked, TensorBoard event files under ``tb/``.
"""

from __future__ import annotations

import errno
import json
import math
import random
import signal
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from unidual import checkpoint as ckpt
from unidual.allocator import tune_allocator
from unidual.data import build_dataset
from unidual.data.errors import DataError
from unidual.data.missing import report_missing
from unidual.data.mixing import MixedDataset, MixedSampler, collate_mixed
from unidual.data.utils import Spread
from unidual.evaluate.evaluator import PRIMARY_METRIC, evaluate
from unidual.models import ImageVideoNet, create_model, get_model_def
from unidual.models.surgery import architecture_mismatch, load_backbone
from unidual.train import distributed as D
from unidual.train import rundir
from unidual.train.compiled import CompiledModel, enable_compile_caches, is_compile_error
from unidual.train.config import ConfigError, TrainConfig, dump_config
from unidual.train.objectives import LossModule, Objective
from unidual.train.plots import plot_metrics
from unidual.train.precise_bn import recompute_bn_statistics
from unidual.train.schedule import from_config as schedule_from_config
from unidual.train.schedule import make_scheduler, scaled_lr
from unidual.train.skips import SkipBudget
from unidual.yamlconfig import config_differences

PROBE_FILES = 32  # files tried per source before training: all unreadable -> the source is refused
LOSS_SCALE_HINT = (
    "lower optim.batch_size (keep the global batch with optim.accumulate), the clip length / input size "
    "of the sources, model.width or model.depth, or use run.amp=bf16 on a GPU"
)


class TrainingError(RuntimeError):
    """Training cannot continue; the message says why and what to change."""


class Interrupted(RuntimeError):
    """Ctrl-C / SIGTERM: a checkpoint was saved, the run can be resumed."""


@dataclass
class RunResult:
    run_dir: Path
    global_step: int
    epoch: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # last validation
    best_score: float | None = None


# --------------------------------------------------------------------------- helpers


def primary_score(metrics: Mapping[str, Mapping[str, float]], modalities: Mapping[str, str]) -> float:
    """Mean over sources of each modality's headline accuracy (image top1, video video@1)."""
    values = [m[PRIMARY_METRIC[modalities[k]]] for k, m in metrics.items() if PRIMARY_METRIC[modalities[k]] in m]
    return float(sum(values) / len(values)) if values else float("nan")


def rng_state() -> dict[str, Any]:
    """Every RNG the loop touches, as tensors / plain values (``weights_only``-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_for_config(cfg: TrainConfig, heads: dict[str, int]) -> ImageVideoNet:
    """The untrained model a training config describes, with ``heads`` {source key: classes}."""
    options = dict(cfg.model.options)
    if get_model_def(cfg.model.name).heads_by_modality:
        options["modalities"] = dict(cfg.modalities)
    clips = [s.clip.frames for s in cfg.sources if s.modality == "video"]
    frames = cfg.model.frames or (clips[0] if clips else None)  # static clips as long as the video clips
    if frames is not None:  # else create_model's own default
        options["frames"] = frames
    return create_model(
        cfg.model.name,
        depth=cfg.model.depth,
        width=cfg.model.width,
        heads=heads,
        channels_last=cfg.run.channels_last,
        **options,
    )


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError)
    )


# --------------------------------------------------------------------------- the trainer


class Trainer:
    """Builds everything from a :class:`TrainConfig`, then :meth:`fit` runs (or resumes) the schedule.

    Rank 0 holds the run directory's lock from construction until :meth:`fit` returns or
    :meth:`close` is called (or the object / process goes away).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        run_dir: str | Path | None = None,
        resume: bool = False,
        env: D.DistEnv | None = None,
        auto_resume: bool = False,
    ) -> None:
        tune_allocator()  # reuse freed activation memory (unidual/allocator.py); UNIDUAL_MALLOC_TUNING=0: off
        self.cfg = cfg
        self.env = env or D.env_from_torchrun()
        try:
            self.device = D.resolve_device(cfg.run.device, self.env)
        except RuntimeError as exc:
            raise TrainingError(f"run.device={cfg.run.device}: {exc}") from None
        D.setup(self.env, self.device)
        if cfg.run.amp != "off" and self.device.type != "cuda":
            raise TrainingError(
                f"run.amp={cfg.run.amp} is for CUDA only (bf16/fp16 are slow or unsupported on CPUs); use run.amp=off"
            )
        self.run_dir = Path(D.broadcast_object(str(run_dir or self._default_run_dir())))
        self.is_main = self.env.is_main
        self.lock: rundir.RunLock | None = None
        self._take_run_dir()
        try:
            self._init_rest(cfg, resume, auto_resume)
        except BaseException:
            self.close()
            raise

    def _take_run_dir(self) -> None:
        """Rank 0 locks the run directory (one writer) and removes what killed saves left; all ranks agree."""
        error = None
        if self.is_main:
            try:
                self.lock = rundir.RunLock(self.run_dir).acquire()
            except rundir.RunDirError as exc:
                error = str(exc)
            else:
                if self.lock.previous:
                    rundir.notice(
                        f"{self.run_dir}: took over the stale lock of {self.lock.previous} (that process is gone)"
                    )
                for path in rundir.remove_stale_temp_files(self.run_dir):
                    rundir.notice(f"removed {path.name}, the temp file of a checkpoint save that was killed")
        error = D.broadcast_object(error)
        if error:
            raise rundir.RunDirError(error)

    def close(self) -> None:
        """Release the run directory (also done at process exit)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _init_rest(self, cfg: TrainConfig, resume: bool, auto_resume: bool) -> None:
        if auto_resume and not resume:
            decision: tuple[bool, str | None] = (False, None)
            if self.is_main:
                try:
                    decision = (self._can_auto_resume(), None)
                except (rundir.RunDirError, ckpt.CheckpointError) as exc:
                    decision = (False, str(exc))
            resume, error = D.broadcast_object(decision)
            if error:
                raise rundir.RunDirError(error)
        self.resume = resume
        seed_everything(cfg.run.seed)  # same on every rank: identical initial weights
        self.finetune_missing: list[str] = []  # head keys left at init when finetuning

        self._build_data()
        self._build_model()
        self._build_optim()
        self.generator = torch.Generator().manual_seed(cfg.run.seed * 7919 + self.env.rank)
        self.epoch = 0
        self.step_in_epoch = 0  # micro-batches of the current epoch already consumed
        self.global_step = 0  # optimiser updates
        self.best_score: float | None = None
        self.last_metrics: dict[str, dict[str, float]] = {}
        self.stop_signal: str | None = None
        self.resume_sampler_state: dict[str, Any] | None = None
        self.tb = None
        if resume:
            self._restore(ckpt.load_checkpoint(self.run_dir / ckpt.LAST, map_location="cpu"))
        else:
            # every rank draws augmentations from its own stream (after identical init)
            seed_everything(cfg.run.seed + 1000 * self.env.rank + 1)

    def _can_auto_resume(self) -> bool:
        """True when the run directory holds a checkpoint of this very config (a restarted job)."""
        last = self.run_dir / ckpt.LAST
        if not last.is_file():
            return False
        stored = ckpt.load_checkpoint(last, map_location="cpu").get("config") or {}
        diffs = config_differences(stored, self.cfg.to_dict())
        if diffs:
            key, old, new = diffs[0]
            raise rundir.RunDirError(
                f"{last}: holds a run of another config ({key}: {old!r} -> {new!r}); it is not resumed "
                f"automatically: use --resume {self.run_dir} or another --out"
            )
        rundir.notice(f"{self.run_dir}: resuming the run found there (same config)")
        return True

    # -- construction ----------------------------------------------------
    def _default_run_dir(self) -> Path:
        name = self.cfg.run.name or (
            f"{self.cfg.regime}-{self.cfg.model.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
        )
        return Path(self.cfg.run.out) / name

    def _build_data(self) -> None:
        cfg = self.cfg
        self.specs = {s.key: s for s in cfg.sources}
        self.modalities = {k: s.modality for k, s in self.specs.items()}
        self.train_sets = {k: build_dataset(s, "train") for k, s in self.specs.items()}
        self.classes = {k: list(ds.classes) for k, ds in self.train_sets.items()}
        for k, ds in self.train_sets.items():
            if len(ds) == 0:
                raise TrainingError(f"source {k!r} ({self.specs[k].root}): the train split has no examples")
            self._probe(k, ds)
        self.skips = SkipBudget(list(self.specs), cfg.data.max_skipped, cfg.data.max_skipped_fraction)
        self.test_sets: dict[str, Any] = {}
        for k, s in self.specs.items():
            test = build_dataset(s, "test", classes=self.classes[k])
            if cfg.data.eval_limit is not None:
                test = Spread(test, cfg.data.eval_limit)
            self.test_sets[k] = test
        self.sampler = MixedSampler(
            {k: len(ds) for k, ds in self.train_sets.items()},
            batch_size=cfg.optim.batch_size,
            epoch_size=cfg.data.epoch_size,
            weights=cfg.data.weights,
            seed=cfg.run.seed,
            rank=self.env.rank,
            world_size=self.env.world_size,
        )
        self.mixed = MixedDataset(self.train_sets)
        self.micro_per_epoch = len(self.sampler)
        if self.micro_per_epoch < 1:
            raise TrainingError(
                f"data.epoch_size={cfg.data.epoch_size} gives no batch of "
                f"{cfg.optim.batch_size} x {self.env.world_size} processes"
            )
        self.updates_per_epoch = math.ceil(self.micro_per_epoch / cfg.optim.accumulate)

    def _probe(self, key: str, dataset: Any) -> None:
        """Refuse a source none of whose files can be read, before any training (up to PROBE_FILES tried)."""
        n = len(dataset)
        tried = sorted({int(i) for i in np.linspace(0, n - 1, num=min(PROBE_FILES, n))})
        failures: list[str] = []
        with torch.random.fork_rng(devices=[]):  # reading draws crops: keep the run's RNG stream untouched
            for i in tried:
                try:
                    dataset[i]
                    return
                except Exception as exc:
                    files = getattr(dataset, "files", None)
                    failures.append(f"{files[i] if files is not None else i}: {exc}")
        every = "every file" if len(tried) == n else f"all {len(tried)} files tried (of {n})"
        raise DataError(
            f"source {key!r} ({self.specs[key].root}): {every} unreadable, e.g. {failures[0]}; "
            "check it with `unidual data check`"
        )

    def _build_model(self) -> None:
        cfg = self.cfg
        try:
            model = model_for_config(cfg, {k: len(c) for k, c in self.classes.items()})
        except (TypeError, ValueError) as exc:  # unknown model.options, bad values: the config's fault
            raise ConfigError(f"model: {exc}") from None
        if cfg.finetune.checkpoint and not self.resume:
            self._load_pretrained(model)
        self.model = model.to(self.device)
        self.objective = Objective.from_config(cfg)
        self.train_module = D.wrap(
            LossModule(self.model, self.objective), self.env, self.device, sync_bn=cfg.run.sync_bn
        )
        loss_module = D.unwrap(self.train_module)
        self.model = loss_module.model  # SyncBatchNorm conversion may replace modules
        self.compiled: CompiledModel | None = None
        if cfg.run.compile:  # the training step only; checkpoints, validation and eval use the plain model
            cache = enable_compile_caches()
            self.compiled = CompiledModel(
                self.model, backend=cfg.run.compile_backend, warn=None if self.is_main else (lambda msg: None)
            )  # rank 0 warns
            loss_module.model = self.compiled
            if self.is_main:
                print(f"run.compile: {cfg.run.compile_backend}, kernel cache {cache}", file=sys.stderr)

    def _load_pretrained(self, model: nn.Module) -> None:
        source = self.cfg.finetune.checkpoint
        payload = ckpt.load_checkpoint(source, map_location="cpu")
        differ = architecture_mismatch(payload["model_spec"], model.spec)
        if differ:  # bn_eps / maxpool are in no tensor: copying anyway would silently compute something else
            raise TrainingError(
                f"{source}: its backbone differs from the configured {self.cfg.model.name} "
                f"({'; '.join(differ)}); set the model to match"
            )
        try:
            ft = self.cfg.finetune
            auto = ft.convert == "auto"
            convert = get_model_def(self.cfg.model.name).pretrained_convert if auto else ft.convert
            missing = load_backbone(
                model, payload["model"], convert=convert, inflate_mode=ft.inflate_mode, own_pathway_first=auto
            )
        except (ValueError, RuntimeError) as exc:
            raise TrainingError(
                f"{source}: cannot load its backbone into {self.cfg.model.name} "
                f"(finetune.convert={self.cfg.finetune.convert}): {exc}"
            ) from exc
        self.finetune_missing = missing

    @property
    def global_batch(self) -> int:
        return self.cfg.optim.batch_size * self.cfg.optim.accumulate * self.env.world_size

    def _build_optim(self) -> None:
        o = self.cfg.optim
        self.lr = scaled_lr(o.lr, self.global_batch, o.reference_batch)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=self.lr,
            momentum=o.momentum,
            weight_decay=o.weight_decay,
            nesterov=o.nesterov and o.momentum > 0,
        )
        self.schedule = schedule_from_config(self.cfg.schedule, self.updates_per_epoch)
        self.scheduler = make_scheduler(self.optimizer, self.schedule)
        self.total_updates = self.schedule.total_steps
        if self.cfg.run.max_steps is not None:
            self.total_updates = min(self.total_updates, self.cfg.run.max_steps)
        fp16 = self.cfg.run.amp == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16) if fp16 else None

    # -- checkpoints -----------------------------------------------------
    def payload(self) -> dict[str, Any]:
        rngs = D.gather_objects({"rng": rng_state(), "generator": self.generator.get_state()})
        return {
            "model": self.model.state_dict(),
            "model_spec": self.model.spec,
            "sources": {k: {"modality": self.modalities[k], "classes": self.classes[k]} for k in self.classes},
            "config": self.cfg.to_dict(),
            "metrics": self.last_metrics,
            "train_state": {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "sampler": self.sampler.state_dict(steps_done=self.step_in_epoch),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rngs,
                "world_size": self.env.world_size,
                "best_score": self.best_score,
            },
        }

    def save(self, best: bool = False) -> None:
        payload = self.payload()  # collective (gathers RNG states): every rank calls it
        error = None
        if self.is_main:
            try:
                # best first: a kill between the two leaves best.pt at least as new as last.pt says it is
                if best:
                    ckpt.save_checkpoint(self.run_dir / ckpt.BEST, payload)
                ckpt.save_checkpoint(self.run_dir / ckpt.LAST, payload)
            except ckpt.CheckpointWriteError as exc:
                error = str(exc)
        error = D.broadcast_object(error)
        if error:
            raise ckpt.CheckpointWriteError(error)

    def _restore(self, payload: Mapping[str, Any]) -> None:
        state = payload.get("train_state")
        if not state:
            raise TrainingError(f"{self.run_dir / ckpt.LAST}: holds no training state, cannot resume")
        differ = ckpt.spec_differences(payload["model_spec"], self.model.spec)
        if differ:  # e.g. a default that changed since the run started: name it rather than fail on a tensor
            raise ConfigError(
                f"{self.run_dir / ckpt.LAST}: was trained with another model ({'; '.join(differ[:4])}); "
                f"set the config to the stored values to resume it"
            )
        ckpt.load_weights(self.model, payload["model"], self.run_dir / ckpt.LAST)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.best_score = state.get("best_score")
        self.last_metrics = dict(payload.get("metrics") or {})
        if int(state.get("world_size", 1)) != self.env.world_size:
            raise TrainingError(
                f"{self.run_dir}: the run used {state.get('world_size')} process(es); resume it "
                f"with the same number (now {self.env.world_size}) so data order and RNG "
                "streams continue exactly"
            )
        self.resume_sampler_state = dict(state["sampler"]) if self.step_in_epoch else None
        mine = state["rng"][self.env.rank]
        set_rng_state(mine["rng"])
        self.generator.set_state(mine["generator"])
        if self.is_main:
            self._truncate_metrics()

    def _truncate_metrics(self) -> None:
        """Drop records the killed run wrote after its last checkpoint, and lines torn by a full disk."""
        _, torn = rundir.truncate_metrics(self.run_dir, self.global_step)
        if torn:
            rundir.notice(
                f"{self.run_dir / rundir.METRICS}: dropped {torn} unreadable line(s) "
                "(a write cut short by a full disk or a kill)"
            )

    # -- files -----------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        error = None
        if self.is_main:
            try:
                self._write_run_files()
            except (TrainingError, OSError) as exc:
                error = (
                    str(exc)
                    if isinstance(exc, TrainingError)
                    else f"{self.run_dir}: cannot write the run files ({exc.strerror or exc})"
                )
        error = D.broadcast_object(error)
        if error:
            raise TrainingError(error)

    def _write_run_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume and (self.run_dir / ckpt.LAST).exists():
            raise TrainingError(
                f"{self.run_dir}: already holds a run (last.pt); resume it with --resume "
                f"{self.run_dir} (or --auto-resume) or choose another --out"
            )
        if not self.resume:
            aside = rundir.set_aside_aborted_metrics(self.run_dir)
            if aside:
                rundir.notice(
                    f"{self.run_dir}: an earlier attempt stopped before its first checkpoint; "
                    f"its records moved to {aside.name}"
                )
        dump_config(self.cfg, self.run_dir / "config.yaml")
        labels = {k: {"modality": self.modalities[k], "classes": c} for k, c in self.classes.items()}
        (self.run_dir / "labels.json").write_text(json.dumps(labels, indent=1))

        for split, sets in (("train", self.train_sets), ("test", self.test_sets)):
            for line in report_missing(sets, split, self.run_dir):
                print(f"warning: {line}", file=sys.stderr)
        if self.cfg.run.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise TrainingError(
                    "run.tensorboard=true needs the tensorboard package (pip install 'unidual[tensorboard]')"
                ) from exc
            self.tb = SummaryWriter(str(self.run_dir / "tb"))

    def log(self, record: dict[str, Any]) -> None:
        """Append one record (strict JSON: NaN/inf become null); a failed append is undone, then stops the run."""
        if not self.is_main:
            return
        line = json.dumps({k: _json_value(v) for k, v in record.items()}, allow_nan=False) + "\n"
        path = self.run_dir / rundir.METRICS
        with open(path, "a") as f:
            size = f.tell()
            try:
                f.write(line)
                f.flush()
            except OSError as exc:
                try:
                    f.truncate(size)  # no torn line: the file stays readable for --resume
                except OSError:
                    pass
                reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
                last = self.run_dir / ckpt.LAST
                raise TrainingError(
                    f"{path}: cannot append ({reason}) at update {self.global_step}; "
                    f"free space, then continue with --resume {self.run_dir}"
                    + ("" if last.exists() else " (no checkpoint yet: start again)")
                ) from None
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record['type']}/{k}", v, record["step"])

    def _plot(self) -> None:
        if self.is_main and self.cfg.run.plots:
            plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir)

    # -- the loop --------------------------------------------------------
    def fit(self) -> RunResult:
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> RunResult:
        self._prepare_run_dir()
        D.barrier()
        previous = self._install_signal_handlers()
        try:
            if not self.resume:
                self.save()  # at update 0: a kill before the first interval still leaves a resumable run
            while self.global_step < self.total_updates:
                finished_epoch = self._run_epoch()
                if self.stop_signal:
                    self.save()
                    raise Interrupted(
                        f"stopped by {self.stop_signal} at update {self.global_step}; "
                        f"checkpoint saved, continue with --resume {self.run_dir}"
                    )
                done = self.global_step >= self.total_updates
                if finished_epoch:
                    self.epoch += 1
                    self.step_in_epoch = 0
                every = self.cfg.run.eval_every
                if done or (finished_epoch and every and self.epoch % every == 0):
                    self._validate_and_save()
                else:
                    self.save()
        finally:
            self._restore_signal_handlers(previous)
            if self.tb is not None:
                self.tb.close()
        self._plot()
        return RunResult(self.run_dir, self.global_step, self.epoch, self.last_metrics, self.best_score)

    def _loader(self) -> DataLoader:
        if self.resume_sampler_state is not None:  # mid-epoch resume: the sampler restarts where it stopped
            self.sampler.load_state_dict(self.resume_sampler_state)
            self.resume_sampler_state = None
        else:
            self.sampler.set_epoch(self.epoch)
        # a private generator: creating the iterator must not consume the global RNG (exact resume)
        gen = torch.Generator().manual_seed(self.cfg.run.seed * 100_003 + self.epoch * 101 + self.env.rank)
        return DataLoader(
            self.mixed,
            batch_sampler=self.sampler,
            collate_fn=collate_mixed,
            num_workers=self.cfg.data.num_workers,
            generator=gen,
            pin_memory=self.device.type == "cuda",
        )

    def _autocast(self):
        if self.cfg.run.amp == "off":
            return nullcontext()
        dtype = torch.bfloat16 if self.cfg.run.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _to_device(self, sub: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
        nb = self.device.type == "cuda"
        return {
            k: {
                "input": v["input"].to(self.device, non_blocking=nb),
                "label": v["label"].to(self.device, non_blocking=nb),
            }
            for k, v in sub.items()
        }

    def _run_epoch(self) -> bool:
        """Train until the epoch ends (True) or the schedule / a signal stops it (False)."""
        cfg = self.cfg
        self.train_module.train()
        loader = self._loader()
        acc = cfg.optim.accumulate
        bar = tqdm(
            total=self.updates_per_epoch,
            initial=self.step_in_epoch // acc,
            unit="update",
            desc=f"epoch {self.epoch + 1}/{math.ceil(cfg.schedule.epochs)}",
            file=sys.stderr,
            disable=not (self.is_main and cfg.run.progress),
            dynamic_ncols=True,
            leave=False,
        )
        window = _Window()
        micro_in_update = 0
        finished = True
        self.optimizer.zero_grad(set_to_none=True)
        with bar:
            for batch in loader:
                for path, reason in batch.get("skipped", []):
                    window.skipped += 1
                    if self.is_main:
                        print(f"warning: skipped {path}: {reason}", file=sys.stderr)
                self._count_skips(batch)
                last_of_update = (micro_in_update + 1 == acc) or (self.step_in_epoch + 1 == self.micro_per_epoch)
                self._micro_step(batch["sub"], last_of_update, acc, window)
                self.step_in_epoch += 1
                micro_in_update += 1
                if not last_of_update:
                    continue
                self._update()
                micro_in_update = 0
                window.updates += 1
                bar.update(1)
                bar.set_postfix(
                    loss=f"{window.mean_loss():.3f}",
                    ex_s=f"{window.rate():.1f}",
                    lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                )
                if self.global_step % cfg.run.log_every == 0:
                    self.log(window.record(self))
                    window = _Window()
                if self._stop_requested() or self.global_step >= self.total_updates:
                    finished = self.step_in_epoch >= self.micro_per_epoch and not self.stop_signal
                    break
                mid_epoch = self.step_in_epoch < self.micro_per_epoch  # epoch ends save anyway
                if cfg.run.save_every and self.global_step % cfg.run.save_every == 0 and mid_epoch:
                    self.save()
        if window.updates:
            self.log(window.record(self))
        return finished

    def _count_skips(self, batch: Mapping[str, Any]) -> None:
        """Add this micro-batch to the skip budget (summed over ranks); past it, stop with the worst source."""
        drawn = {k: len(v["label"]) for k, v in batch["sub"].items()}
        skipped = list(zip(batch.get("skipped_sources", []), batch.get("skipped", [])))
        for key, _ in skipped:
            drawn[key] = drawn.get(key, 0) + 1
        self.skips.add(drawn, skipped)
        if self.env.enabled:
            flag = torch.tensor([1.0 if self.skips.over() else 0.0])
            over = D.all_reduce_sum(flag).item() > 0
        else:
            over = self.skips.over()
        if over:
            raise DataError(
                self.skips.message()
                if self.skips.over()
                else "another process exceeded the skip budget (data.max_skipped / "
                "data.max_skipped_fraction); see its message"
            )

    def _micro_step(self, sub: Mapping[str, Any], sync: bool, acc: int, window: _Window) -> None:
        sub = {k: v for k, v in sub.items() if len(v["label"])}
        if not sub and not self.env.enabled:
            return  # every example unreadable: nothing to learn from
        ddp = isinstance(self.train_module, nn.parallel.DistributedDataParallel)
        context = self.train_module.no_sync() if (ddp and not sync) else nullcontext()
        try:
            with context:
                with self._autocast():
                    loss, stats = self.train_module(self._to_device(sub), self.generator)
                self._check_finite(loss)
                scaled = loss / acc
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
        except Exception as exc:
            if self.compiled is not None and self.compiled.active and is_compile_error(exc):
                self.compiled.disable(exc)  # e.g. the backward graph failed to compile: redo this step eager
                return self._micro_step(sub, sync, acc, window)
            if is_oom(exc):
                raise TrainingError(
                    f"out of memory with optim.batch_size={self.cfg.optim.batch_size} on "
                    f"{self.device}: {LOSS_SCALE_HINT}"
                ) from exc
            raise
        window.add(stats, float(loss.detach()))

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stop on NaN/inf (all ranks agree, so none hangs in the gradient all-reduce)."""
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).item() else 1.0])
        if D.all_reduce_sum(bad).item() > 0:
            where = f"{self.run_dir / ckpt.LAST}" if (self.run_dir / ckpt.LAST).exists() else "no checkpoint yet"
            raise TrainingError(
                f"loss is {float(loss.detach())} at epoch {self.epoch + 1}, update {self.global_step + 1}: "
                f"training diverged. Last good checkpoint: {where}. Lower optim.lr, raise "
                f"schedule.warmup_epochs or set optim.clip_grad_norm, then start again (or --resume)."
            )

    def _update(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.clip_grad_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1

    # -- validation ------------------------------------------------------
    def validate(self) -> dict[str, dict[str, float]]:
        metrics: dict[str, dict[str, float]] = {}
        if self.is_main:
            metrics = evaluate(
                self.model,
                self.test_sets,
                self.modalities,
                batch_size=self.cfg.data.eval_batch_size,
                device=self.device,
                num_workers=self.cfg.data.num_workers,
                progress=self.cfg.run.progress,
            )
        return D.broadcast_object(metrics)

    def _precise_bn(self) -> None:
        """Recompute BN running statistics from fresh training batches (docs/training.md, precise BN)."""
        n = self.cfg.data.precise_bn_batches
        sampler = MixedSampler(
            {k: len(ds) for k, ds in self.train_sets.items()},
            batch_size=self.cfg.optim.batch_size,
            epoch_size=n * self.cfg.optim.batch_size * self.env.world_size,
            weights=self.cfg.data.weights,
            seed=self.cfg.run.seed + 7919 * (self.epoch + 1),
            rank=self.env.rank,
            world_size=self.env.world_size,
        )
        loader = DataLoader(
            self.mixed, batch_sampler=sampler, collate_fn=collate_mixed, num_workers=self.cfg.data.num_workers
        )
        recompute_bn_statistics(self.model, (batch["sub"] for batch in loader), self.device)

    def _validate_and_save(self) -> None:
        if self.cfg.data.precise_bn_batches:
            self._precise_bn()
        self.last_metrics = self.validate()
        score = primary_score(self.last_metrics, self.modalities)
        best = self.best_score is None or (not math.isnan(score) and score > self.best_score)
        if best:
            self.best_score = score
        record = {"type": "val", "epoch": self.epoch, "step": self.global_step, "score": score}
        for key, values in self.last_metrics.items():
            record.update({f"{key}/{m}": v for m, v in values.items()})
        self.log(record)
        self.save(best=best)
        self._plot()

    # -- signals ---------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}

        def handler(signum: int, _frame: Any) -> None:
            if self.stop_signal:  # second Ctrl-C: give up at once
                raise KeyboardInterrupt
            self.stop_signal = signal.Signals(signum).name
            if self.is_main:
                print(f"\n{self.stop_signal}: finishing this update, saving a checkpoint...", file=sys.stderr)

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: no handlers, plain KeyboardInterrupt semantics
            pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: Mapping[int, Any]) -> None:
        for sig, h in previous.items():
            signal.signal(sig, h)

    def _stop_requested(self) -> bool:
        flag = torch.tensor([1.0 if self.stop_signal else 0.0])
        if D.all_reduce_sum(flag).item() > 0 and not self.stop_signal:
            self.stop_signal = "a signal on another rank"
        return bool(self.stop_signal)


def _json_value(value: Any) -> Any:
    """NaN / inf -> None so metrics.jsonl stays valid JSON (a score over zero examples is undefined)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Window:
    """Running training statistics between two metrics.jsonl records."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.updates = 0
        self.examples = 0
        self.loss_total = 0.0
        self.batches = 0
        self.loss_sum: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.correct: dict[str, int] = {}
        self.skipped = 0

    def add(self, stats: Mapping[str, Any], loss: float) -> None:
        self.examples += int(stats["examples"])
        self.loss_total += loss
        self.batches += 1
        for name in stats["count"]:
            self.loss_sum[name] = self.loss_sum.get(name, 0.0) + stats["loss_sum"][name]
            self.count[name] = self.count.get(name, 0) + stats["count"][name]
            self.correct[name] = self.correct.get(name, 0) + stats["correct"][name]

    def mean_loss(self) -> float:
        return self.loss_total / max(1, self.batches)

    def rate(self) -> float:
        return self.examples / max(1e-9, time.perf_counter() - self.start)

    def record(self, trainer: Trainer) -> dict[str, Any]:
        world = trainer.env.world_size
        rec: dict[str, Any] = {
            "type": "train",
            "epoch": trainer.epoch + trainer.step_in_epoch / trainer.micro_per_epoch,
            "step": trainer.global_step,
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "loss": self.mean_loss(),
            "examples_per_s": self.rate() * world,
            "skipped": self.skipped,
        }
        for name in sorted(self.count):
            rec[f"loss/{name}"] = self.loss_sum[name] / max(1, self.count[name])
            rec[f"acc/{name}"] = 100.0 * self.correct[name] / max(1, self.count[name])
        return rec


def train(
    cfg: TrainConfig, *, run_dir: str | Path | None = None, resume: bool = False, auto_resume: bool = False
) -> RunResult:
    """Train (or resume) one run; the Python entry point behind ``unidual train``.

    ``auto_resume``: if the run directory already holds a checkpoint of this same config,
    continue it (a job restarted by torchrun); a checkpoint of another config is an error.
    """
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume, auto_resume=auto_resume)
    return trainer.fit()
