"""The study file: which runs make the table, on which data, with which seeds.

A study YAML names training configs (relative to the study file, like ``base:``, which a study
file may use too: the Table-2 studies share their rows through one base file),
the table rows they fill and the columns to report; data and output paths are
relative to the working directory (the project root), as in training configs.
Every key is checked, because a typo found after an hour of training is an hour lost.

```yaml
name: cifar_motion            # id of the generated section in a Markdown file (--doc)
title: "..."                  # caption above the table
out: runs/study               # <out>/seed<k>/<id>/ run directories + table.md/csv, chart.png
seeds: [0]
data: {build: motion, image_root: ..., out: ..., frames: 16}   # optional, see unidual.study.data
overrides: []                 # key=value applied to every training config
eval: {clips: 10, batch_size: 64, limit: null, workers: 0}
columns:                      # column groups, one per source key (metrics follow its modality)
  - {source: motion, title: CIFAR-motion}
models:                       # runs, in table order; rows may be shared (Table 3)
  - {id: r2plus1d, row: "R(2+1)D", config: r2plus1d.yaml, group: "N/A"}
  - {id: r2d_finetuned, row: R2D-finetuned, config: r2d_finetuned.yaml, pretrained: r2plus1d}
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unidual.yamlconfig import ConfigError, read_yaml
from unidual.yamlconfig import from_dict as build_dataclass

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
# Metrics of a column group, by the modality of its source (Table 2: clip@1, video@1 | top 1, top 5).
DEFAULT_METRICS = {"video": ["clip@1", "video@1"], "image": ["top1", "top5"]}
KNOWN_METRICS = {"video": ("clip@1", "video@1", "video@5", "mean_class@1"), "image": ("top1", "top5", "mean_class@1")}


class StudyError(ConfigError):
    """A study file, its runs or their results are inconsistent; the message names the file or run."""


@dataclass
class EvalSettings:
    """How every trained model is evaluated (after training, on its final weights)."""

    clips: int | None = 10  # uniform clips per test video (None: the source's own num_clips)
    batch_size: int = 64  # views per forward pass
    limit: int | None = None  # evaluate N test examples spread over each source (smoke runs only)
    workers: int = 0  # DataLoader workers for evaluation


@dataclass
class Column:
    source: str
    title: str
    metrics: list[str] | None = None  # None: DEFAULT_METRICS of the source's modality


@dataclass
class ModelRun:
    """One training run; ``row`` is the table row it fills (several runs may share a row)."""

    id: str
    row: str
    config: Path
    group: str | None = None
    pretrained: str | None = None  # id of the run whose final checkpoint this one finetunes
    report: list[str] | None = None  # source keys shown in the table (None: every column source it has)
    overrides: list[str] = field(default_factory=list)  # key=value on this run's config only (ablations)
    seeds: list[int] | None = None  # the seeds this run is trained with (None: all the study's seeds)

    def runs_seed(self, seed: int) -> bool:
        return self.seeds is None or seed in self.seeds


@dataclass
class Comparison:
    """A paired comparison the study reports: ``a`` minus ``b`` on one source's metric, with a 95 % CI."""

    a: str  # model id
    b: str  # model id
    source: str
    metric: str
    claim: str | None = None  # the paper's claim this comparison decides


@dataclass
class Study:
    path: Path
    name: str
    title: str
    out: Path
    seeds: list[int]
    columns: list[Column]
    models: list[ModelRun]
    data: dict[str, Any] | None = None
    overrides: list[str] = field(default_factory=list)
    eval: EvalSettings = field(default_factory=EvalSettings)
    comparisons: list[Comparison] = field(default_factory=list)

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


_TOP = {"name", "title", "out", "seeds", "data", "overrides", "eval", "columns", "models", "comparisons"}
_MODEL = {"id", "row", "config", "group", "pretrained", "report", "overrides", "seeds"}


def load_study(path: str | Path) -> Study:
    """Read and check a study file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: study file not found")
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        raise StudyError(str(exc)) from None
    return study_from_dict(raw, path)


def _fail(path: Path, key: str, msg: str) -> None:
    raise StudyError(f"{path}: {key}: {msg}")


def _unknown(path: Path, where: str, got: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        _fail(path, where, f"unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _typed(cls: type, raw: Any, path: Path, prefix: str) -> Any:
    try:
        return build_dataclass(cls, raw, str(path), prefix)
    except ConfigError as exc:
        raise StudyError(str(exc)) from None


def _opt_int(path: Path, key: str, value: Any, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(path, key, f"must be an integer >= {minimum}, got {value!r}")
    return value


def study_from_dict(raw: Mapping[str, Any], path: Path) -> Study:
    _unknown(path, "top level", raw, _TOP)
    name = raw.get("name")
    if not isinstance(name, str) or not ID_PATTERN.match(name):
        _fail(path, "name", f"a short id of letters, digits, '_', '-', '.' is required, got {name!r}")
    seeds = raw.get("seeds", [0])
    integers = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if not integers or not seeds:
        _fail(path, "seeds", f"must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        _fail(path, "seeds", f"must be distinct, got {seeds}")
    overrides = raw.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        _fail(path, "overrides", "must be a list of 'key=value' strings")
    data = raw.get("data")
    if data is not None and not isinstance(data, dict):
        _fail(path, "data", "must be a mapping (build: ... or sources: FILE)")

    settings = _typed(EvalSettings, raw.get("eval"), path, "eval.")
    for key, minimum in (("clips", 1), ("batch_size", 1), ("limit", 1), ("workers", 0)):
        _opt_int(path, f"eval.{key}", getattr(settings, key), minimum)

    columns = []
    for i, c in enumerate(raw.get("columns") or []):
        if isinstance(c, dict) and c.get("title") is None:
            c = {**c, "title": str(c.get("source"))}
        columns.append(_typed(Column, c, path, f"columns.{i}."))
    if not columns:
        _fail(path, "columns", "at least one column (source) is required")
    sources = [c.source for c in columns]
    if len(set(sources)) != len(sources):
        _fail(path, "columns", f"each source appears once, got {sources}")

    models: list[ModelRun] = []
    for i, m in enumerate(raw.get("models") or []):
        where = f"models.{i}"
        if not isinstance(m, dict):
            _fail(path, where, "must be a mapping with id, row, config")
        _unknown(path, where, m, _MODEL)
        for key in ("id", "row", "config"):
            if not isinstance(m.get(key), str) or not m[key]:
                _fail(path, f"{where}.{key}", "is required (a string)")
        if not ID_PATTERN.match(m["id"]):
            _fail(path, f"{where}.id", f"letters, digits, '_', '-', '.' only (it names a folder), got {m['id']!r}")
        config = path.parent / m["config"]
        if not config.is_file():
            _fail(path, f"{where}.config", f"training config not found: {config}")
        report = m.get("report")
        if report is not None:
            if not isinstance(report, list) or not all(isinstance(r, str) for r in report):
                _fail(path, f"{where}.report", "must be a list of source keys")
            missing = [r for r in report if r not in sources]
            if missing:
                _fail(path, f"{where}.report", f"{missing} are not table columns ({sources})")
        run_overrides = m.get("overrides") or []
        if not isinstance(run_overrides, list) or not all(isinstance(o, str) and "=" in o for o in run_overrides):
            _fail(path, f"{where}.overrides", "must be a list of 'key=value' strings")
        run_seeds = m.get("seeds")
        if run_seeds is not None and (
            not isinstance(run_seeds, list)
            or not run_seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in run_seeds)
        ):
            _fail(path, f"{where}.seeds", f"must be a non-empty list of integers, got {run_seeds!r}")
        models.append(
            ModelRun(
                id=m["id"],
                row=m["row"],
                config=config,
                group=m.get("group"),
                pretrained=m.get("pretrained"),
                report=report,
                overrides=list(run_overrides),
                seeds=run_seeds,
            )
        )
    if not models:
        _fail(path, "models", "at least one model is required")
    ids = [m.id for m in models]
    if len(set(ids)) != len(ids):
        _fail(path, "models", f"ids must be unique, got {ids}")
    for m in models:
        if m.pretrained is not None and m.pretrained not in ids:
            _fail(path, f"models.{ids.index(m.id)}.pretrained", f"{m.pretrained!r} is not a model id ({ids})")
        pre = next((p for p in models if p.id == m.pretrained), None)
        if pre is not None and pre.seeds is not None and not set(m.seeds or seeds) <= set(pre.seeds):
            _fail(path, f"models.{ids.index(m.id)}.seeds", f"needs its pretraining run {pre.id!r} on every seed")
    comparisons = []
    for i, c in enumerate(raw.get("comparisons") or []):
        comparison = _typed(Comparison, c, path, f"comparisons.{i}.")
        for side in ("a", "b"):
            if getattr(comparison, side) not in ids:
                _fail(path, f"comparisons.{i}.{side}", f"{getattr(comparison, side)!r} is not a model id ({ids})")
        if comparison.source not in sources:
            _fail(path, f"comparisons.{i}.source", f"{comparison.source!r} is not a table column ({sources})")
        comparisons.append(comparison)
    study = Study(
        path=path,
        name=name,
        title=str(raw.get("title") or name),
        out=Path(raw.get("out") or "runs/study"),
        seeds=list(seeds),
        columns=columns,
        models=models,
        data=data,
        overrides=list(overrides),
        eval=settings,
        comparisons=comparisons,
    )
    study.ordered()  # cycles are an error now, not after the first runs
    return study
