"""The study file: which runs make the table, on which data, with which seeds.

A study YAML names the table rows, each a model of the model table trained with the study's
shared recipe (``train_config``, derived as :mod:`unidual.study.rows` says) or a training config
file of its own; paths in it are relative to the study file (like ``base:``, which a study file
may use too: the Table-2 studies share their rows through one base file), data and output
paths relative to the working directory (the project root), as in training configs. Every key
is checked before the first run, because a typo found after an hour of training is an hour
lost: each dataclass below checks its own fields (``checked``, :mod:`unidual.yamlconfig`),
:func:`_check_links` what joins them, and :func:`check_rows` the columns and metrics against
the sources the rows train on.

```yaml
name: cifar_motion            # id of the generated section in a Markdown file (--doc)
title: "..."                  # caption above the table
out: runs/study               # <out>/seed<k>/<id>/ run directories + table.md/csv, chart.png
seeds: [0]
data: {build: motion, image_root: ..., out: ..., frames: 16}   # optional, see unidual.study.data
train_config: base.yaml       # the recipe every `model:` row starts from
overrides: []                 # key=value applied to every training config
eval: {clips: 10, batch_size: 64, limit: null, workers: 0}
columns:                      # column groups, one per source key (metrics follow its modality)
  - {source: motion, title: CIFAR-motion}
models:                       # runs, in table order; rows may be shared (Table 3)
  - {id: r2plus1d, row: "R(2+1)D", model: r2plus1d, group: "N/A"}
  - {id: r2d_finetuned, row: R2D-finetuned, model: r2d, pretrained: r2plus1d}
  - {id: mine, row: Mine, config: mine.yaml}     # a training config of its own
```
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from unidual.checkpoint import WEIGHTS
from unidual.models.table import model_names
from unidual.study.rows import derive_row
from unidual.train.regimes import regime_names
from unidual.yamlconfig import Check, Checked, ConfigError, FieldError, at_least, checked, each, one_of, read_yaml
from unidual.yamlconfig import from_dict as build_dataclass

# a folder name: no '/', no '..', nothing hidden (names starting with '.' are the study's temporary files)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
# Metrics of a column group, by the modality of its source (Table 2: clip@1, video@1 | top 1, top 5).
DEFAULT_METRICS = {"video": ["clip@1", "video@1"], "image": ["top1", "top5"]}
KNOWN_METRICS = {"video": ("clip@1", "video@1", "video@5", "mean_class@1"), "image": ("top1", "top5", "mean_class@1")}
# metrics with a per-example record (runner.EXAMPLES_FILE), which a paired comparison needs
PAIRED_METRICS = {modality: tuple(m for m in ms if m != "mean_class@1") for modality, ms in KNOWN_METRICS.items()}


class StudyError(ConfigError):
    """A study file, its runs or their results are inconsistent; the message names the file or run."""


def _metric(table: dict[str, tuple[str, ...]]) -> Check:
    valid = sorted({m for ms in table.values() for m in ms})
    return lambda value: None if value in valid else f"unknown metric {value!r}; valid: {valid}"


def _folder_name(value: str) -> str | None:
    if ID_PATTERN.match(value):
        return None
    return f"letters, digits, '_', '-', '.' only, not starting with '.' (it names a folder), got {value!r}"


def _text(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _override(value: str) -> str | None:
    return None if "=" in value else f"must be 'key=value', got {value!r}"


def _seeds(values: list[int]) -> str | None:
    if not values:
        return "must be a non-empty list of integers"
    return None if len(set(values)) == len(values) else f"must be distinct, got {values}"


def _not_empty(what: str) -> Check:
    return lambda values: None if values else f"at least one {what} is required"


@dataclass
class EvalSettings(Checked):
    """How every trained model is evaluated (after training, on its final weights)."""

    clips: int | None = checked(10, at_least(1))  # uniform clips per test video (None: the source's num_clips)
    batch_size: int = checked(64, at_least(1))  # views per forward pass
    limit: int | None = checked(None, at_least(1))  # evaluate N test examples per source (smoke runs only)
    workers: int = checked(0, at_least(0))  # DataLoader workers for evaluation


@dataclass
class Column(Checked):
    source: str
    title: str = ""  # default: the source key
    metrics: list[str] | None = checked(None, each(_metric(KNOWN_METRICS)))  # None: DEFAULT_METRICS by modality

    def __post_init__(self) -> None:
        super().__post_init__()
        self.title = self.title or self.source


@dataclass
class ModelRun(Checked):
    """One training run; ``row`` is the table row it fills (several runs may share a row)."""

    id: str = checked(MISSING, _folder_name)
    row: str = checked(MISSING, _text)
    model: str | None = checked(None, one_of(model_names))  # trained with the study's train_config
    config: Path | None = None  # or: a training config of its own (relative to the study file)
    regime: str | None = checked(None, one_of(regime_names))  # model rows; default: the model's (rows.py)
    sources: list[str] | None = None  # model rows: the base's sources it trains on (default: rows.py)
    group: str | None = None
    pretrained: str | None = None  # id of the run whose final checkpoint this one finetunes
    report: list[str] | None = None  # source keys shown in the table (None: every column source it has)
    overrides: list[str] = checked(MISSING, each(_override), default_factory=list)  # this run only (ablations)
    seeds: list[int] | None = checked(None, _seeds)  # the seeds it is trained with (None: all the study's)
    # the weights evaluated: None = what the checkpoint records as better at the trainer's own check, "raw",
    # or "ema" (rows with run.ema_decay: an EMA ablation scores the moving average, chosen before any result)
    weights: str | None = checked(None, one_of(WEIGHTS))

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.model is None) == (self.config is None):
            raise FieldError("model", "give either model: NAME (trained with the study's train_config) or config: FILE")
        if self.config is not None and (self.regime is not None or self.sources is not None):
            raise FieldError("regime" if self.regime is not None else "sources", "is for model: rows only")

    def runs_seed(self, seed: int) -> bool:
        return self.seeds is None or seed in self.seeds


@dataclass
class Comparison(Checked):
    """A paired comparison the study reports: ``a`` minus ``b`` on one source's metric, with a 95 % CI."""

    a: str  # model id
    b: str  # model id
    source: str
    metric: str = checked(MISSING, _metric(PAIRED_METRICS))
    claim: str | None = None  # the paper's claim this comparison decides


@dataclass
class Study(Checked):
    name: str = checked(MISSING, _folder_name)
    columns: list[Column] = checked(MISSING, _not_empty("column (source)"))
    models: list[ModelRun] = checked(MISSING, _not_empty("model"))
    title: str = ""  # default: the name
    out: Path = field(default=Path("runs/study"))
    seeds: list[int] = checked(MISSING, _seeds, default_factory=lambda: [0])
    data: dict[str, Any] | None = None
    train_config: Path | None = None  # the recipe of the model: rows (relative to the study file)
    overrides: list[str] = checked(MISSING, each(_override), default_factory=list)
    eval: EvalSettings = field(default_factory=EvalSettings)
    comparisons: list[Comparison] = field(default_factory=list)
    path: Path = field(default=Path("<dict>"), init=False)  # the study file (set by study_from_dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.title = self.title or self.name

    def model(self, run_id: str) -> ModelRun:
        return next(m for m in self.models if m.id == run_id)

    def ordered(self, only: list[str] | None = None) -> list[ModelRun]:
        """Runs in dependency order (pretraining first), else in file order; ``only`` pulls in its dependencies."""
        wanted = set(m.id for m in self.models) if not only else set()
        for run_id in only or []:
            if run_id not in {m.id for m in self.models}:
                raise StudyError(
                    f"{self.path}: --only {run_id!r}: no such model id (ids: {[m.id for m in self.models]})"
                )
            current: str | None = run_id
            while current is not None:
                wanted.add(current)
                current = self.model(current).pretrained
        done: list[ModelRun] = []
        placed: set[str] = set()
        pending = [m for m in self.models if m.id in wanted]
        while pending:
            ready = [m for m in pending if m.pretrained is None or m.pretrained in placed]
            if not ready:
                raise StudyError(f"{self.path}: 'pretrained' links form a cycle among {[m.id for m in pending]}")
            first = ready[0]
            done.append(first)
            placed.add(first.id)
            pending.remove(first)
        return done

    def row_config(self, run: ModelRun) -> tuple[dict[str, Any], str]:
        """The raw training config of one run (before data locations and overrides) and where it comes from."""
        if run.config is not None:
            return read_yaml(run.config), str(run.config)
        assert run.model is not None and self.train_config is not None  # checked by ModelRun and _check_links
        where = f"{self.path}: models entry {run.id!r} ({run.model} on {self.train_config})"
        return derive_row(
            read_yaml(self.train_config),
            run_id=run.id,
            model=run.model,
            regime=run.regime,
            sources=run.sources,
            pretrained=run.pretrained is not None,
            where=where,
        ), where

    def row_sources(self, run: ModelRun) -> dict[str, str | None]:
        """``{source key: modality}`` of the sources one run trains on, from its config alone (no data needed).

        The modality is None where the config leaves it to the study's built data.
        """
        raw, _ = self.row_config(run)
        entries = raw.get("sources")
        if not isinstance(entries, list):
            return {}
        return {s["key"]: s.get("modality") for s in entries if isinstance(s, dict) and isinstance(s.get("key"), str)}

    def modalities(self) -> dict[str, str]:
        """``{source key: modality}`` of every source some run of the study trains on (where its config says)."""
        return {k: v for m in self.models for k, v in self.row_sources(m).items() if v is not None}


def load_study(path: str | Path) -> Study:
    """Read and check a study file and its rows' sources; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: study file not found")
    try:
        study = study_from_dict(read_yaml(path), path)
        check_rows(study)
    except StudyError:
        raise
    except ConfigError as exc:
        raise StudyError(str(exc)) from None
    return study


def study_from_dict(raw: Any, path: Path) -> Study:
    """The study of one file, each key checked, then the links between its entries (no training config read)."""
    try:
        study = build_dataclass(Study, raw, str(path))
    except ConfigError as exc:
        raise StudyError(str(exc)) from None
    study.path = path
    for m in study.models:
        if m.config is not None:
            m.config = path.parent / m.config
    if study.train_config is not None:
        study.train_config = path.parent / study.train_config
    _check_links(study)
    return study


def _check_links(study: Study) -> None:
    """What joins the entries of a study file: ids, pretraining links, reports and comparisons."""

    def fail(key: str, msg: str) -> None:
        raise StudyError(f"{study.path}: {key}: {msg}")

    sources = [c.source for c in study.columns]
    if len(set(sources)) != len(sources):
        fail("columns", f"each source appears once, got {sources}")
    ids = [m.id for m in study.models]
    if len(set(ids)) != len(ids):
        fail("models", f"ids must be unique, got {ids}")
    for i, m in enumerate(study.models):
        if m.config is not None and not m.config.is_file():
            fail(f"models.{i}.config", f"training config not found: {m.config}")
        if m.model is not None and study.train_config is None:
            fail(f"models.{i}.model", "needs the study's train_config: (the recipe its config is derived from)")
        missing = [r for r in m.report or [] if r not in sources]
        if missing:
            fail(f"models.{i}.report", f"{missing} are not table columns ({sources})")
        if m.pretrained is not None and m.pretrained not in ids:
            fail(f"models.{i}.pretrained", f"{m.pretrained!r} is not a model id ({ids})")
        pre = next((p for p in study.models if p.id == m.pretrained), None)
        if pre is not None and pre.seeds is not None and not set(m.seeds or study.seeds) <= set(pre.seeds):
            fail(f"models.{i}.seeds", f"needs its pretraining run {pre.id!r} on every seed")
    if study.train_config is not None and not study.train_config.is_file():
        fail("train_config", f"training config not found: {study.train_config}")
    for i, c in enumerate(study.comparisons):
        for side in ("a", "b"):
            if getattr(c, side) not in ids:
                fail(f"comparisons.{i}.{side}", f"{getattr(c, side)!r} is not a model id ({ids})")
        if c.source not in sources:
            fail(f"comparisons.{i}.source", f"{c.source!r} is not a table column ({sources})")
    study.ordered()  # cycles are an error now, not after the first runs


def check_rows(study: Study) -> None:
    """Columns, reports and metrics against the sources the rows train on (reads each row's training config)."""

    def fail(key: str, msg: str) -> None:
        raise StudyError(f"{study.path}: {key}: {msg}")

    keys: set[str] = set()
    for i, m in enumerate(study.models):
        own = study.row_sources(m)
        missing = [r for r in m.report or [] if r not in own]
        if missing:
            fail(f"models.{i}.report", f"{missing} are not sources of its training config ({sorted(own)})")
        keys.update(own)
    for i, c in enumerate(study.columns):
        if c.source not in keys:
            fail(f"columns.{i}.source", f"{c.source!r} is not a source of any run; valid: {sorted(keys)}")
    modalities = study.modalities()  # metrics are checked where a config states the source's modality
    for i, c in enumerate(study.columns):
        valid = KNOWN_METRICS.get(modalities.get(c.source, ""))
        wrong = [m for m in c.metrics or [] if valid is not None and m not in valid]
        if wrong:
            fail(f"columns.{i}.metrics", f"{wrong} are not {modalities[c.source]} metrics; valid: {list(valid or ())}")
    for i, comparison in enumerate(study.comparisons):
        valid = PAIRED_METRICS.get(modalities.get(comparison.source, ""))
        if valid is not None and comparison.metric not in valid:
            modality = modalities[comparison.source]
            fail(
                f"comparisons.{i}.metric",
                f"{comparison.metric!r} is not a per-example {modality} metric; valid: {list(valid)}",
            )
