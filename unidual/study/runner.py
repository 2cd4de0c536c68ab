"""Run a study: resolve each run's training config, train (or resume, or skip), evaluate, collect.

Run directory of model ``id`` and seed ``s``: ``<out>/seed<s>/<id>/`` (a normal training run
directory plus two study files):

- ``study_result.json`` — written last, after the evaluation: the run is finished and is
  never retrained (its stored config must still match the study's, else an error);
- ``study_time.json`` — training seconds accumulated over sessions (a resumed run adds up).

A run with ``last.pt`` but no result resumes through the trainer's exact resume; a
finetuned run reads the *final* checkpoint (``last.pt``) of its pretraining run, which the
dependency order has finished first. Evaluation uses the final weights too: the
trainer's ``best.pt`` is chosen on test data, so it would flatter the model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unidual.checkpoint import load_model
from unidual.data.formats import discover_classes
from unidual.data.utils import Spread
from unidual.evaluate.datasets import build_test_datasets, shared_heads, source_specs
from unidual.evaluate.evaluator import evaluate_sources
from unidual.run import Run
from unidual.study.atomic import replacing, write_json
from unidual.study.config import ModelRun, Study, StudyError
from unidual.study.data import fill_sources
from unidual.study.report import machine
from unidual.train.build import label_parts_for
from unidual.train.config import ConfigError, TrainConfig, apply_override, from_dict
from unidual.train.regimes import get_regime, regime_names
from unidual.train.trainer import train
from unidual.yamlconfig import config_differences

RESULT_FILE = Run.STUDY_RESULT
EXAMPLES_FILE = "study_examples.npz"  # per test example: correct or not, per metric (paired comparisons)
TIME_FILE = Run.STUDY_TIME
# Keys that may differ between sessions without changing what is trained.
COSMETIC_KEYS = {"run.progress", "run.out", "run.name", "run.plots", "run.tensorboard"}


@dataclass
class Task:
    seed: int
    model: ModelRun
    run_dir: Path
    pretrained_dir: Path | None

    @property
    def label(self) -> str:
        return f"seed {self.seed} · {self.model.row} ({self.model.id})"


def seed_dir(out: Path, seed: int) -> Path:
    """The runs of one seed (one study session at a time holds its lock, ``.lock``)."""
    return out / f"seed{seed}"


def run_dir(out: Path, seed: int, run_id: str) -> Path:
    return seed_dir(out, seed) / run_id


def plan(study: Study, out: Path, seeds: Sequence[int], only: list[str] | None = None) -> list[Task]:
    """Every (seed, model) in order: seeds outermost (a one-seed table is ready early), dependencies first."""
    order = study.ordered(only)
    return [
        Task(seed, m, run_dir(out, seed, m.id), run_dir(out, seed, m.pretrained) if m.pretrained else None)
        for seed in seeds
        for m in order
        if m.runs_seed(seed)
    ]


def status(task: Task) -> str:
    if (task.run_dir / RESULT_FILE).is_file():
        return "done"
    if Run(task.run_dir).has_checkpoint():
        return "partial"
    return "new"


# --------------------------------------------------------------------------- configs


def resolve_config(
    study: Study, task: Task, built: Mapping[str, Mapping[str, Any]] | None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """The TrainConfig of one run: its row's config, data locations filled in, study + CLI overrides, seed, pretraining."""
    raw, where = study.row_config(task.model)
    if built is not None:
        raw["sources"] = fill_sources(raw.get("sources") or [], built, where)
    for text in [*study.overrides, *task.model.overrides, *overrides]:
        apply_override(raw, text)
    raw.setdefault("run", {})["seed"] = task.seed
    if task.pretrained_dir is not None:
        raw.setdefault("finetune", {})["checkpoint"] = str(Run(task.pretrained_dir).last)
    elif raw.get("regime") in regime_names() and get_regime(raw["regime"]).pretrained:
        raise ConfigError(
            f"{where}: regime {raw['regime']!r} in a study needs 'pretrained: <model id>' in "
            f"{study.path} (models entry {task.model.id!r}), so the real pretrained run is used"
        )
    cfg = from_dict(raw, where)
    if task.model.weights == "ema" and not cfg.run.ema_decay:
        raise StudyError(f"{study.path}: model {task.model.id!r}: weights: ema needs run.ema_decay > 0 in its config")
    if built is not None and cfg.run.label_parts:  # before any run trains, and under --dry-run
        check_label_parts(cfg, f"{study.path}: model {task.model.id!r}")
    missing = [k for k in reported_sources(study, task.model, cfg.source_keys) if k not in cfg.source_keys]
    if missing:
        raise StudyError(
            f"{study.path}: model {task.model.id!r} reports {missing}, which its config "
            f"{where} does not train on ({cfg.source_keys})"
        )
    return cfg


def check_label_parts(cfg: TrainConfig, where: str) -> None:
    """``run.label_parts`` needs a source with ``"<class> <motion>"`` class names; a study checks every
    run's sources up front, so a row without one (e.g. an image-only row under a study-wide override)
    stops the study before its first run instead of at its own start, hours later."""
    try:
        label_parts_for({s.key: discover_classes(s) for s in cfg.sources if s.head is None})
    except ConfigError as exc:
        raise StudyError(f"{where}: {exc}") from None


def reported_sources(study: Study, model: ModelRun, keys: Sequence[str]) -> list[str]:
    """Sources shown in the table for this run: ``report:``, else every column source it trains on."""
    if model.report is not None:
        return list(model.report)
    return [c.source for c in study.columns if c.source in keys]


def expected_reports(study: Study) -> dict[str, set[str]]:
    """Row -> the sources its runs will report (from the config files alone: no data needed)."""
    out: dict[str, set[str]] = {}
    for m in study.models:
        out.setdefault(m.row, set()).update(reported_sources(study, m, list(study.row_sources(m))))
    return out


def check_same_config(task: Task, cfg) -> None:
    """A finished or half-trained run must have been trained with the config we would use now."""
    stored = None
    if (task.run_dir / RESULT_FILE).is_file():
        stored = read_result(task.run_dir).get("config")
    elif (run := Run(task.run_dir)).config_file.is_file() and run.has_checkpoint():
        stored = run.read_config()
    if stored is None:
        return
    diff = sorted(k for k, _, _ in config_differences(stored, cfg.to_dict(), ignore=COSMETIC_KEYS))
    if diff:
        shown = ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
        raise StudyError(
            f"{task.run_dir}: was trained with a different config ({shown}); move it away or "
            f"use another --out to retrain, or undo the config change"
        )


# --------------------------------------------------------------------------- results


def read_result(directory: Path) -> dict[str, Any]:
    path = directory / RESULT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StudyError(f"{path}: unreadable study result ({exc}); delete it to re-evaluate the run") from exc


def _read_train_time(directory: Path) -> dict[str, Any]:
    try:
        record = json.loads((directory / TIME_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _add_train_time(directory: Path, seconds: float) -> float:
    """Add a training session's seconds, and the machine it ran on (CPU, thread count), to the run's record.

    The machines are the training processes' own (a study's runs usually train at one thread each,
    two side by side): the report's machine line comes from here, not from the reporting process.
    """
    previous = _read_train_time(directory)
    try:
        total = seconds + float(previous.get("train_seconds", 0.0))
    except (TypeError, ValueError):
        total = seconds
    machines = [m for m in previous.get("machines", []) if isinstance(m, dict)]
    here = machine()
    if here not in machines:
        machines.append(here)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / TIME_FILE, {"train_seconds": total, "machines": machines})
    return total


def collect(study: Study, out: Path, seeds: Sequence[int]) -> tuple[list[dict[str, Any]], list[str]]:
    """Finished results of every model and seed of the study, and the (seed, id) still missing."""
    results, missing = [], []
    for seed in seeds:
        for m in study.models:
            if not m.runs_seed(seed):
                continue
            directory = run_dir(out, seed, m.id)
            if (directory / RESULT_FILE).is_file():
                r = read_result(directory)
                r.update(row=m.row, group=m.group)  # the table layout follows the study file, not the record
                results.append(r)
            else:
                missing.append(f"seed {seed} {m.id}")
    return results, missing


# --------------------------------------------------------------------------- evaluation


def evaluate_run_sources(
    directory: Path,
    sources: Sequence[str],
    settings,
    device_name: str = "auto",
    progress: bool = False,
    weights: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Final weights (``last.pt``) on ``sources``' test sets with the run's label maps: ``(results, payload)``.

    ``results`` maps a source key to its :class:`~unidual.evaluate.evaluator.SourceResult`
    (scores, labels, metrics); ``settings.clips`` clips per video; ``weights`` as :func:`load_model`'s.
    """

    model, payload = load_model(Run(directory).last, deploy=True, map_location="cpu", weights=weights)
    specs = source_specs(payload, clips=settings.clips)
    specs = {k: specs[k] for k in sources}
    datasets = build_test_datasets(payload, specs)
    if settings.limit:
        datasets = {k: Spread(ds, settings.limit) for k, ds in datasets.items()}
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device_name)
    modalities = {k: s["modality"] for k, s in specs.items()}
    results = evaluate_sources(
        model,
        datasets,
        modalities,
        batch_size=settings.batch_size,
        device=device_name,
        num_workers=settings.workers,
        progress=progress,
        head_of=shared_heads(payload),
    )
    return results, payload


def evaluate_run(
    directory: Path,
    sources: Sequence[str],
    settings,
    device_name: str = "auto",
    progress: bool = False,
    weights: str | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, int], dict[str, str]]:
    """Final weights, the run's label maps, ``settings.clips`` clips per video: ``(metrics, classes, modalities)``.

    Also writes :data:`EXAMPLES_FILE`: ``{key}/index`` (test example index) and ``{key}/{metric}``
    (1 where that example is correct) for every source.
    """
    results, payload = evaluate_run_sources(directory, sources, settings, device_name, progress, weights)
    arrays = {}
    for key, r in results.items():
        arrays[f"{key}/index"] = r.indices.numpy()
        arrays.update({f"{key}/{m}": hits.numpy().astype(np.uint8) for m, hits in r.per_example().items()})
    with replacing(directory / EXAMPLES_FILE) as tmp:
        np.savez_compressed(tmp, **arrays)
    metrics = {k: r.metrics() for k, r in results.items()}
    classes = {k: len(payload["sources"][k]["classes"]) for k in sources}
    modalities = {k: r.modality for k, r in results.items()}
    return metrics, classes, modalities


# --------------------------------------------------------------------------- one run


def eval_record(study: Study, model: ModelRun | None = None) -> dict[str, Any]:
    """What makes two evaluations comparable (a finished run evaluated otherwise is evaluated again)."""
    record: dict[str, Any] = {"clips": study.eval.clips, "limit": study.eval.limit, "weights": Run.LAST}
    if model is not None and model.weights is not None:  # absent otherwise: earlier results stay valid
        record["weights"] = f"{Run.LAST} ({model.weights})"
    return record


def run_task(study: Study, task: Task, cfg, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (resume / skip) and evaluate one run; returns its result record."""
    check_same_config(task, cfg)
    settings = eval_record(study, task.model)
    sources = reported_sources(study, task.model, cfg.source_keys)
    if status(task) == "done":
        previous = read_result(task.run_dir)
        if (
            previous.get("eval") == settings
            and previous.get("report") == sources
            and (task.run_dir / EXAMPLES_FILE).is_file()
        ):
            log(f"  already finished ({task.run_dir / RESULT_FILE}); not retrained")
            return previous
        log(
            f"  trained; evaluated before with {previous.get('eval')} on {previous.get('report')}, "
            f"evaluating again with {settings} on {sources}"
        )
        return _evaluate_and_record(
            task, cfg, study.eval, sources, float(previous.get("train_seconds", 0.0)), settings, log
        )
    resume = status(task) == "partial"  # the trainer sets aside, under the run's lock, what a killed attempt left
    pretrained = Run(task.pretrained_dir) if task.pretrained_dir is not None else None
    if pretrained is not None and not pretrained.has_checkpoint():
        raise StudyError(f"{task.run_dir}: its pretraining run {pretrained.path} has no {Run.LAST}")
    log(
        f"  {'resuming from ' + str(Run(task.run_dir).last) if resume else 'training'}"
        + (f", finetuning {pretrained.last}" if pretrained and not resume else "")
        + f": {cfg.model.name} depth {cfg.model.depth} width {cfg.model.width}, {cfg.schedule.epochs:g} epochs "
        f"of {cfg.data.epoch_size} examples -> {task.run_dir}"
    )
    start = time.perf_counter()
    try:
        train(cfg, run_dir=task.run_dir, resume=resume)
    finally:
        train_seconds = _add_train_time(task.run_dir, time.perf_counter() - start)
    return _evaluate_and_record(task, cfg, study.eval, sources, train_seconds, settings, log)


def _evaluate_and_record(
    task: Task,
    cfg,
    evaluation,
    sources: list[str],
    train_seconds: float,
    settings: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    log(
        f"  evaluating {sources} ({evaluation.clips or 'the source default'} clips per video"
        + (f", {evaluation.limit} examples per source" if evaluation.limit else "")
        + ")"
    )
    start = time.perf_counter()
    metrics, classes, modalities = evaluate_run(
        task.run_dir, sources, evaluation, cfg.run.device, progress=cfg.run.progress, weights=task.model.weights
    )
    result = {
        "id": task.model.id,
        "row": task.model.row,
        "group": task.model.group,
        "seed": task.seed,
        "report": sources,
        "metrics": metrics,
        "classes": classes,
        "modalities": modalities,
        "train_seconds": train_seconds,
        "train_machines": _read_train_time(task.run_dir).get("machines", []),  # absent: trained before recorded
        "eval_seconds": time.perf_counter() - start,
        "eval": settings,
        "pretrained": str(Run(task.pretrained_dir).last) if task.pretrained_dir else None,
        "config": cfg.to_dict(),
    }
    write_json(task.run_dir / RESULT_FILE, result)  # last: its presence means "finished"
    return result
