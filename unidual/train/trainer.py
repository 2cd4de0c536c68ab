"""The training loop behind ``unidual train``: every regime, exact resume, rank-0-only files.

One *update* = ``optim.accumulate`` forward/backward passes of ``optim.batch_size`` examples per
process, then one optimiser step and one LR-schedule step; an epoch is ``data.epoch_size`` examples
drawn by the mixing sampler. Built by :mod:`.build`, saved by :mod:`.state`, reported by :mod:`.meters`.
Every rank takes the same decisions at the same step: the per-update flags (skip budget, loss not
finite, stop signal) are agreed in one all-reduce (:func:`D.any_rank`), and rank-0-only steps that
may fail go through :func:`D.main_then_agree`.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from unidual import checkpoint as ckpt
from unidual.data.mixing import SubBatch
from unidual.data.mixup import mix_sources
from unidual.models import ImageVideoNet
from unidual.run import Run, RunDirError, RunLock
from unidual.runtime import tune_allocator
from unidual.train import distributed as D
from unidual.train import rundir
from unidual.train import state as S
from unidual.train.build import build_data, build_model, build_optim, default_run_dir, join_job, mixers
from unidual.train.compiled import is_compile_error
from unidual.train.config import TrainConfig
from unidual.train.ema import ModelEma
from unidual.train.errors import Interrupted, TrainingError, diverged, is_oom, out_of_memory
from unidual.train.inputs import TrainLoader, to_device
from unidual.train.meters import MetricsLog, TrainMeter, postfix_of, progress
from unidual.train.optim import reported_lr
from unidual.train.precision import Precision
from unidual.train.signals import StopSignals
from unidual.train.state import RunResult
from unidual.train.validation import precise_bn, validate, validation_record

__all__ = ["Interrupted", "RunResult", "Trainer", "TrainingError", "train"]


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
        tune_allocator()  # reuse freed activation memory (unidual/runtime.py); UNIDUAL_MALLOC_TUNING=0: off
        self.cfg = cfg
        self.env = env or D.env_from_torchrun()
        self.device = join_job(cfg, self.env)
        self.run = Run(D.broadcast_object(str(run_dir or default_run_dir(cfg))))
        self.is_main = self.env.is_main
        self.lock: RunLock | None = None

        def take() -> None:  # rank 0 only; the lock object stays there
            self.lock = rundir.take(self.run)

        D.main_then_agree(take, (RunDirError,))
        try:
            self._build(resume, auto_resume)
        except BaseException:
            self.close()
            raise

    # -- construction ----------------------------------------------------
    def _build(self, resume: bool, auto_resume: bool) -> None:
        cfg, env = self.cfg, self.env
        if auto_resume and not resume:
            resume = D.main_then_agree(
                lambda: rundir.can_auto_resume(self.run, cfg), (RunDirError, ckpt.CheckpointError)
            )
        self.resume = resume
        S.seed_everything(cfg.run.seed)  # same on every rank: identical initial weights
        self.data = build_data(cfg, env)
        self.loader = TrainLoader(self.data, cfg, rank=env.rank, device=self.device)
        parts = build_model(cfg, self.data, self.device, env, resume=resume)
        self.model, self.objective, self.train_module = parts.model, parts.objective, parts.train_module
        self.compiled, self.finetune_missing = parts.compiled, parts.finetune_missing
        # recipe: the EMA of the weights (every rank keeps one: the weights agree after the all-reduce)
        # and the sources that mix (mixup / cutmix) with the class count of the head each trains
        self.ema = ModelEma(self.model, cfg.run.ema_decay) if cfg.run.ema_decay else None
        self.mixers, self.mix_classes = mixers(cfg, self.data.classes, self.data.heads)
        self.global_batch = cfg.optim.batch_size * cfg.optim.accumulate * env.world_size
        opt = build_optim(cfg, self.model, self.data.updates_per_epoch, self.global_batch)
        self.optimizer, self.scheduler = opt.optimizer, opt.scheduler
        self.precision = Precision(cfg.run.amp, self.device, warn=self.is_main)
        self.amp_skipped = 0  # fp16 updates skipped for overflow since the last record
        self.schedule, self.lr, self.total_updates = opt.schedule, opt.lr, opt.total_updates
        # the routing generator (aux routing, frame choice) is the same on every rank: every rank then
        # runs the same pathways in the same order each step (SyncBatchNorm's per-layer collectives)
        self.generator = torch.Generator().manual_seed(cfg.run.seed * 7919)
        self.loop = S.LoopState()
        self.stop = StopSignals(announce=self.is_main)
        self.metrics = MetricsLog(self.run, self.is_main)
        self.resume_sampler_state: dict[str, Any] | None = None
        self._losses: list[torch.Tensor] = []  # the micro-steps' losses of the update in progress
        if resume:
            self.loop, self.resume_sampler_state = S.restore(
                self.run.load_last(), self.run.last, model=self.model, optimizer=self.optimizer,
                scheduler=self.scheduler, scaler=self.precision.scaler, generator=self.generator, env=env,
                ema=self.ema,
            )  # fmt: skip
            if self.is_main:
                rundir.truncate_on_resume(self.run, self.loop.global_step)
        else:  # every rank draws augmentations from its own stream (after identical init)
            S.seed_everything(cfg.run.seed + 1000 * env.rank + 1)

    def close(self) -> None:
        """Release the run directory (also done at process exit)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # -- the state tests and tools look at ---------------------------------
    run_dir = property(lambda self: self.run.path)
    global_step = property(lambda self: self.loop.global_step)
    epoch = property(lambda self: self.loop.epoch)
    last_metrics = property(lambda self: self.loop.last_metrics)
    micro_per_epoch = property(lambda self: self.data.micro_per_epoch)
    updates_per_epoch = property(lambda self: self.data.updates_per_epoch)

    # -- files -----------------------------------------------------------
    def save(self, best: bool = False) -> None:
        """last.pt (and best.pt); collective: every rank calls it, rank 0 writes, all agree on failure."""
        d = self.data
        train_state = S.training_state(self.loop, optimizer=self.optimizer, scheduler=self.scheduler,
                                       sampler=d.sampler, scaler=self.precision.scaler, generator=self.generator,
                                       world_size=self.env.world_size)  # fmt: skip
        payload = S.checkpoint_payload(
            self.model, self.data.label_maps(), self.cfg.to_dict(), self.loop, train_state, self.ema
        )
        D.main_then_agree(lambda: self.run.save(payload, best=best), (ckpt.CheckpointWriteError,))

    def _prepare_run_dir(self) -> None:
        def write() -> None:  # rank 0; every rank learns the outcome
            d = self.data
            rundir.write_run_files(self.run, self.cfg, resume=self.resume, sources=d.label_maps(),
                                   datasets={"train": d.train_sets, "test": d.test_sets})  # fmt: skip
            if self.cfg.run.tensorboard:
                self.metrics.open_tensorboard()

        D.main_then_agree(write, (TrainingError,))

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (rank 0); a full disk stops the run, resumable."""
        self.metrics.write(record)

    # -- the loop --------------------------------------------------------
    def fit(self) -> RunResult:
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> RunResult:
        self._prepare_run_dir()
        D.barrier()
        loop = self.loop
        try:
            with self.stop:
                if not self.resume:
                    self.save()  # at update 0: a kill before the first interval still leaves a resumable run
                while loop.global_step < self.total_updates:
                    finished_epoch = self._run_epoch()
                    if self.stop.now(self.env.enabled):
                        self.save()
                        raise Interrupted(
                            f"stopped by {self.stop.received} at update {loop.global_step}; "
                            f"checkpoint saved, continue with --resume {self.run.path}"
                        )
                    if finished_epoch:
                        loop.epoch += 1
                        loop.step_in_epoch = 0
                    every = self.cfg.run.eval_every
                    if loop.global_step >= self.total_updates or (finished_epoch and every and loop.epoch % every == 0):
                        self._validate_and_save()
                    else:
                        self.save()
        finally:
            self.metrics.close()
        self.metrics.plot(self.cfg.run.plots)
        return RunResult(self.run.path, loop.global_step, loop.epoch, loop.last_metrics, loop.best_score)

    def _run_epoch(self) -> bool:
        """Train until the epoch ends (True) or the schedule / a signal stops it (False)."""
        cfg, loop, acc = self.cfg, self.loop, self.cfg.optim.accumulate
        self.train_module.train()
        meter = TrainMeter()
        micro_in_update = 0
        finished = True
        self.optimizer.zero_grad(set_to_none=True)
        desc = f"epoch {loop.epoch + 1}/{math.ceil(cfg.schedule.epochs)}"
        with progress(self.data.updates_per_epoch, loop.step_in_epoch // acc, desc,
                      enabled=self.is_main and cfg.run.progress) as bar:  # fmt: skip
            batches = self.loader.epoch(loop.epoch, self.resume_sampler_state)
            self.resume_sampler_state = None
            for batch in batches:
                meter.note_skips(batch, self.data.skips, announce=self.is_main)
                if self.env.enabled:  # every rank the same sources, shapes and order (no divergent collectives)
                    batch = batch.filled(self.data.spares, list(self.data.specs))
                last = micro_in_update + 1 == acc or loop.step_in_epoch + 1 == self.data.micro_per_epoch
                self._micro_step(batch.sub, last, acc, meter)
                loop.step_in_epoch += 1
                micro_in_update += 1
                if not last:
                    continue
                skipped = self._update()
                micro_in_update = 0
                if skipped:  # fp16 overflow: no update happened, the next micro-batches redo it
                    continue
                meter.updates += 1
                postfix = None
                if loop.global_step % cfg.run.log_every == 0:
                    postfix = self._log_window(meter)
                    meter = TrainMeter()
                if postfix is not None:
                    bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if self.stop.now(self.env.enabled) or loop.global_step >= self.total_updates:
                    finished = loop.step_in_epoch >= self.data.micro_per_epoch and not self.stop.now(self.env.enabled)
                    break
                mid_epoch = loop.step_in_epoch < self.data.micro_per_epoch  # epoch ends save anyway
                if cfg.run.save_every and loop.global_step % cfg.run.save_every == 0 and mid_epoch:
                    self.save()
        if meter.updates:
            self._log_window(meter)
        return finished

    def _log_window(self, meter: TrainMeter) -> dict[str, str]:
        loop = self.loop
        record = meter.record(epoch=loop.epoch + loop.step_in_epoch / self.data.micro_per_epoch,
                              step=loop.global_step, lr=reported_lr(self.optimizer),
                              world_size=self.env.world_size)  # fmt: skip
        if self.precision.scaler is not None:  # fp16: updates skipped for overflow since the last record
            record["amp_skipped"], self.amp_skipped = self.amp_skipped, 0
        self.log(record)
        return postfix_of(record)

    def _micro_step(
        self, sub: dict[str, SubBatch], sync: bool, acc: int, meter: TrainMeter, ready: dict[str, Any] | None = None
    ) -> None:
        sub = {k: v for k, v in sub.items() if len(v["label"])}
        if not sub and not self.env.enabled:
            return  # every example unreadable: nothing to learn from
        ddp = self.train_module  # no gradient all-reduce until the update's last micro-batch
        context = ddp.no_sync() if isinstance(ddp, nn.parallel.DistributedDataParallel) and not sync else nullcontext()
        batch = ready if ready is not None else self._device_batch(sub)  # a compile-error retry reuses it
        try:
            with context:
                with self.precision.autocast():
                    loss, stats = self.train_module(batch, self.generator)
                self.precision.backward(loss / acc)
        except Exception as exc:
            if self.compiled is not None and self.compiled.active and is_compile_error(exc):
                self.compiled.disable(exc)  # e.g. the backward graph failed to compile: redo this step eager
                return self._micro_step(sub, sync, acc, meter, batch)
            if is_oom(exc):
                raise out_of_memory(self.cfg.optim.batch_size, self.device) from exc
            raise
        self._losses.append(loss.detach())
        meter.add(stats, loss)

    def _device_batch(self, sub: dict[str, SubBatch]) -> dict[str, Any]:
        """The micro-batch on the device, mixed per source (mixup / cutmix, the trainer's generator) where asked."""
        batch = to_device(sub, self.device, self.data.norms)
        return mix_sources(batch, self.mixers, self.mix_classes, self.generator) if self.mixers else batch

    def _update(self) -> bool:
        """Agree on the update's flags (one all-reduce, one host read), then step, or stop; True: skipped (fp16)."""
        losses, self._losses = self._losses, []
        finite = torch.stack([torch.isfinite(x) for x in losses]).all() if losses else torch.ones((), dtype=torch.bool)
        overflow = self.precision.unscale(self.optimizer)  # fp16: gradients inf/NaN (a device flag)
        overflowing = overflow if overflow is not None else False
        flags: list[bool | torch.Tensor] = [self.data.skips.over(), ~finite, bool(self.stop.received), overflowing]
        over, not_finite, signalled, overflowed = D.any_rank(flags, self.device)
        if over:
            raise self.data.skips.error()
        self.stop.agree(signalled)
        if self.precision.scaler is not None and (overflowed or not_finite):
            self.optimizer.zero_grad(set_to_none=True)  # no step, no schedule step: the update is redone
            self.amp_skipped += 1
            if self.precision.skip():
                return True
        if not_finite or overflowed:
            bad = next((float(x) for x in losses if not math.isfinite(float(x))), float("nan"))
            raise diverged(bad, self.loop.epoch + 1, self.loop.global_step + 1,
                           str(self.run.last) if self.run.has_checkpoint() else None)  # fmt: skip
        if self.cfg.optim.clip_grad_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm)
        self.precision.step(self.optimizer)
        if self.ema is not None:  # after a real step only (an fp16-skipped update returned above)
            self.ema.update(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.loop.global_step += 1
        return False

    # -- validation ------------------------------------------------------
    def validate(self) -> dict[str, dict[str, float]]:
        return validate(self.model, self.data, self.cfg, self.device, self.env, self.loader.workers)

    def _validate_and_save(self) -> None:
        ema = cast(ImageVideoNet, self.ema.module) if self.ema is not None else None
        loop, workers = self.loop, self.loader.workers
        if self.cfg.data.precise_bn_batches:
            precise_bn(self.model, self.data, self.cfg, self.device, self.env, loop.epoch, workers, ema=ema)
        loop.last_metrics, record, score, weights = validation_record(
            self.model,
            ema,
            self.data,
            self.cfg,
            self.device,
            self.env,
            workers,
            epoch=loop.epoch,
            step=loop.global_step,
        )
        if weights is not None:
            loop.weights = weights
        best = loop.best_score is None or (not math.isnan(score) and score > loop.best_score)
        if best:
            loop.best_score = score
        self.log(record)
        self.save(best=best)
        self.metrics.plot(self.cfg.run.plots)


def train(
    cfg: TrainConfig, *, run_dir: str | Path | None = None, resume: bool = False, auto_resume: bool = False
) -> RunResult:
    """Train (or resume) one run; the Python entry point behind ``unidual train``.

    ``auto_resume``: continue the run directory's checkpoint of this same config (a job restarted by
    torchrun); a checkpoint of another config is an error."""
    return Trainer(cfg, run_dir=run_dir, resume=resume, auto_resume=auto_resume).fit()
