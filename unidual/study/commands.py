"""``unidual study CONFIG [key=value ...] [--out DIR] [--seeds S ...] [--doc FILE] ...``.

Exit codes: 0 done, 1 data / training / checkpoint error, 2 bad study or training config,
130 interrupted (checkpoints saved; rerun the same command to continue).
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from unidual.checkpoint import CheckpointError
from unidual.data.errors import DataError
from unidual.progress import Progress
from unidual.run import Run, RunDirError, RunLock
from unidual.study import report
from unidual.study.atomic import write_json, write_text
from unidual.study.calibrate import calibrate
from unidual.study.chart import plot_table
from unidual.study.compare import compare, comparisons_markdown, write_comparisons_csv
from unidual.study.config import Study, StudyError, load_study
from unidual.study.data import built_sources, prepare_data
from unidual.study.parts import cached_parts, collapsed, epoch_parts, keep_parts, motion_chance, part_accuracy
from unidual.study.runner import (
    RESULT_FILE,
    collect,
    evaluate_run_sources,
    expected_reports,
    plan,
    read_result,
    resolve_config,
    run_task,
    seed_dir,
    status,
)
from unidual.study.table import build_table, to_markdown, write_csv, write_runs_csv
from unidual.train.config import ConfigError
from unidual.train.trainer import Interrupted, TrainingError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="study YAML (e.g. configs/cpu/study/study.yaml)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="training-config overrides applied to every run, e.g. schedule.epochs=1",
    )
    parser.add_argument("--out", help="study directory (default: the study's out:)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default: the study's seeds:)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these model ids (plus what they finetune)")
    parser.add_argument(
        "--doc",
        type=Path,
        metavar="FILE",
        help="write the table, command, machine and wall time between the study's markers in FILE",
    )
    parser.add_argument(
        "--eval-limit",
        type=int,
        metavar="N",
        help="evaluate only N test examples per source (smoke runs; not for reported numbers)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan (order, run dirs, status) and exit")
    parser.add_argument(
        "--calibrate",
        type=int,
        metavar="N",
        help="time N updates of every run and extrapolate the training time, then exit",
    )
    parser.add_argument("--data-only", action="store_true", help="build (or check) the study's data and exit")
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild table/chart (and --doc) from finished runs, train nothing"
    )


def command_line(args: argparse.Namespace) -> str:
    """The command as the user would retype it (for the generated docs)."""
    parts = ["unidual", "study", args.config, *args.overrides]
    if args.out:
        parts += ["--out", args.out]
    if args.seeds:
        parts += ["--seeds", *map(str, args.seeds)]
    if args.only:
        parts += ["--only", *args.only]
    if args.eval_limit:
        parts += ["--eval-limit", str(args.eval_limit)]
    if args.doc:
        parts += ["--doc", str(args.doc)]
    return shlex.join(parts)


class Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        s = int(time.perf_counter() - self.start)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_outputs(
    study: Study,
    out: Path,
    args: argparse.Namespace,
    clock: Clock,
    data_seconds: float | None,
    modalities: dict[str, str],
) -> dict[str, Any]:
    """table.md/csv, runs.csv, chart.png, results.json from every finished run; --doc section."""
    seeds = args.seeds or study.seeds
    results, missing = collect(study, out, seeds)
    for r in results:
        for key, modality in r.get("modalities", {}).items():
            modalities.setdefault(key, modality)
    table = build_table(study, results, modalities, expected_reports(study))
    md = to_markdown(table)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "table.md", f"# {study.title}\n\n{md}")
    write_csv(table, out / "table.csv")
    write_runs_csv(results, out / "runs.csv")
    if results:
        plot_table(table, out / "chart.png", study.title)
    summary = {
        "name": study.name,
        "title": study.title,
        "config": str(study.path),
        "command": command_line(args),
        "machine": report.machine(),
        "training_machines": report.training_machines(results),
        "seeds": list(seeds),
        "out": str(out),
        "runs_done": len(results),
        "missing": missing,
        "run_seconds": sum(r.get("train_seconds", 0.0) + r.get("eval_seconds", 0.0) for r in results),
        "invocation_seconds": clock.seconds,
        "data_seconds": data_seconds,
    }
    write_json(out / "results.json", {"summary": summary, "results": results})
    paired = [r for r in (compare(study, out, seeds, c) for c in study.comparisons) if r is not None]
    if paired:
        write_comparisons_csv(paired, out / "comparisons.csv")
        md += "\n" + comparisons_markdown(paired, {m.id: m.row for m in study.models})
        write_text(out / "table.md", f"# {study.title}\n\n{md}")
    if args.doc:
        report.update_markdown(args.doc, study.name, report.section(summary, md))
    return {"summary": summary, "markdown": md}


def _data_progress():
    bar = Progress(unit="video", desc="data", disable=not sys.stderr.isatty(), file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


def _prepare_data(study: Study, *, dry_run: bool) -> tuple[dict[str, Any] | None, float | None]:
    """The study's built sources and the seconds it took (a dry run only looks, never builds)."""
    if study.data is None:
        return None, None
    if dry_run:
        built = built_sources(study)
        log(f"[study] data: {'built' if built is not None else 'not built yet (the study builds it first)'}")
        return built, None
    log(f"[study] data: {study.data.get('build', 'sources')} -> {study.data.get('out', study.data.get('sources'))}")
    start = time.perf_counter()
    bar, progress = _data_progress()
    with bar:
        built = prepare_data(study, progress)
    seconds = time.perf_counter() - start
    log(f"[study] data ready in {seconds:.1f} s (sources: {', '.join(built or {})})")
    return built, seconds


def run_study(args: argparse.Namespace) -> int:
    clock = Clock()
    misplaced = [o for o in args.only or [] if "=" in o]
    if misplaced:
        raise StudyError(
            f"--only {' '.join(args.only)}: {misplaced} look like overrides; put key=value "
            "overrides before the --options"
        )
    study = load_study(args.config)  # every key, column and metric checked against the rows' sources
    if args.eval_limit is not None:
        if args.eval_limit < 1:
            raise StudyError(f"--eval-limit {args.eval_limit}: must be >= 1")
        study.eval.limit = args.eval_limit
    out = Path(args.out) if args.out else study.out
    seeds = args.seeds or study.seeds
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"--seeds {seeds}: seeds must be distinct")
    if args.report_only:  # reads finished runs; the tables it writes replace the old ones whole
        result = write_outputs(study, out, args, clock, None, study.modalities())
        print(result["markdown"], end="")
        return 0
    if args.dry_run or args.data_only or args.calibrate:  # nothing written under --out
        return _without_out(study, args, seeds, out)
    with _holding(out, seeds):  # a second session on the same seeds is refused before it builds anything
        return _run(study, args, seeds, out, clock)


@contextmanager
def _holding(out: Path, seeds: list[int]) -> Iterator[None]:
    """The session's locks on its seeds' folders (``<out>/seed<k>/.lock``, the run-directory lock).

    Per seed, so that two sessions may train different seeds of one study side by side (one per
    core, as docs/results.md does) while a second session on a seed already being trained is refused.
    """
    with ExitStack() as stack:
        for seed in seeds:
            stack.callback(RunLock(seed_dir(out, seed)).acquire().release)
        yield


def _without_out(study: Study, args: argparse.Namespace, seeds: list[int], out: Path) -> int:
    """--data-only, --dry-run, --calibrate: build or look at the data, resolve every run, write nothing in out."""
    built, _ = _prepare_data(study, dry_run=args.dry_run)
    if args.data_only:
        return 0
    tasks = plan(study, out, seeds, args.only)
    configs = [resolve_config(study, t, built, args.overrides) for t in tasks]
    if args.calibrate:
        seeds_first = [(t, c) for t, c in zip(tasks, configs) if t.seed == seeds[0]]
        calibrate([t for t, _ in seeds_first], [c for _, c in seeds_first], args.calibrate, log)
        return 0
    for i, (task, cfg) in enumerate(zip(tasks, configs), 1):
        after = f", finetunes {task.pretrained_dir}" if task.pretrained_dir else ""
        print(
            f"{i}/{len(tasks)} {task.label}: {status(task)}, {cfg.regime}/{cfg.model.name} "
            f"on {cfg.source_keys} -> {task.run_dir}{after}"
        )
    return 0


def _run(study: Study, args: argparse.Namespace, seeds: list[int], out: Path, clock: Clock) -> int:
    built, data_seconds = _prepare_data(study, dry_run=False)
    tasks = plan(study, out, seeds, args.only)
    configs = [resolve_config(study, t, built, args.overrides) for t in tasks]  # every config error before training
    modalities = study.modalities()  # of every row, not only the ones --only trains: the table keeps its columns
    for cfg in configs:
        modalities.update(cfg.modalities)
    for i, (task, cfg) in enumerate(zip(tasks, configs), 1):
        log(f"[study {i}/{len(tasks)} | elapsed {clock}] {task.label}")
        result = run_task(study, task, cfg, log=log)
        shown = "; ".join(
            f"{k}: "
            + ", ".join(
                f"{m} {v:.1f}" for m, v in result["metrics"][k].items() if m in ("clip@1", "video@1", "top1", "top5")
            )
            for k in result["report"]
        )
        log(f"  done ({(result['train_seconds'] + result['eval_seconds']) / 60:.1f} min): {shown}")
        write_outputs(study, out, args, clock, data_seconds, dict(modalities))
    final = write_outputs(study, out, args, clock, data_seconds, dict(modalities))
    print(final["markdown"], end="")
    log(
        f"[study] {len(tasks)} run(s) in {clock}; tables in {out} (table.md, table.csv, runs.csv, chart.png)"
        + (f"; {args.doc} updated" if args.doc else "")
    )
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return run_study(args)
    except (StudyError, ConfigError, RunDirError) as exc:  # a bad study or config, a busy or unusable --out
        print(f"unidual study: {exc}", file=sys.stderr)
        return 2
    except (DataError, TrainingError, CheckpointError) as exc:
        print(f"unidual study: {exc}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt) as exc:
        print(
            f"unidual study: interrupted ({exc or 'Ctrl-C'}); rerun the same command to continue — finished "
            "runs are kept, an interrupted run resumes from its last checkpoint",
            file=sys.stderr,
        )
        return 130


# -- `unidual study-parts CONFIG`: which half of "<class> <motion>" labels each run gets right ----------
def parts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="study YAML (e.g. configs/cpu/study/study.yaml)")
    parser.add_argument("--out", help="study directory (default: the study's out:)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the study's seeds:)")
    parser.add_argument("--source", default="motion", help="the video source with '<class> <motion>' labels")
    parser.add_argument(
        "--epochs",
        action="store_true",
        help="also the training accuracy per epoch (clip, class part, motion part) from each run's metrics.jsonl "
        "(the parts need run.label_parts)",
    )


def parts_main(args: argparse.Namespace) -> int:
    try:
        study = load_study(args.config)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else study.out
    rows: list[str] = []
    epochs: list[tuple[str, int, dict[int, dict[str, float]]]] = []  # (row, seed, per-epoch accuracies)
    per_model: dict[str, list[dict[str, float]]] = {}
    chance = 0.0
    for task in plan(study, out, args.seeds or study.seeds):
        if not (task.run_dir / RESULT_FILE).is_file() or args.source not in read_result(task.run_dir)["metrics"]:
            continue  # not finished, or a model without that task (R2D)
        checkpoint, weights = Run(task.run_dir).last, task.model.weights
        acc = cached_parts(task.run_dir, checkpoint, args.source, weights)
        if acc is None:
            r = evaluate_run_sources(task.run_dir, [args.source], study.eval, weights=weights)[0][args.source]
            acc = part_accuracy(r.predictions, r.labels, r.classes)
            acc["collapsed"] = float(collapsed(acc["motion"], r.classes))
            acc["chance"] = motion_chance(r.classes)
            keep_parts(task.run_dir, checkpoint, args.source, weights, acc)
        chance = acc["chance"]
        rows.append(
            f"| {task.model.row} | {task.seed} | {acc['both']:.1f} | {acc['class']:.1f} | {acc['motion']:.1f} | "
            f"{'yes' if acc['collapsed'] else 'no'} |"
        )
        if args.epochs:
            records, _ = Run(task.run_dir).read_metrics()
            per_epoch = epoch_parts(records, args.source)
            epochs.append((task.model.row, task.seed, per_epoch))
            last = per_epoch[max(per_epoch)] if per_epoch else {}
            acc.update({f"train_{k}": last.get(k, math.nan) for k in ("clip", "motion")})
        per_model.setdefault(task.model.row, []).append(acc)
        print(f"{task.label}: {acc}", file=sys.stderr, flush=True)
    if not rows:
        print(f"error: no finished run in {out} reports {args.source!r}", file=sys.stderr)
        return 1
    print(
        "| model | seed | video@1 (%) | class part right (%) | motion part right (%) | collapsed |\n"
        "|---|---:|---:|---:|---:|---|"
    )
    print("\n".join(rows))
    # with --epochs, the last epoch's training accuracy beside the test's: underfitting reads off one row
    train = " | median training clip@1, last epoch | median training motion part, last epoch" if args.epochs else ""
    print(
        f"\nCollapsed: the test motion part within 5 points of chance ({chance:.1f} %).\n\n"
        f"| model | median video@1 | median class part | median motion part{train} | collapsed runs |\n"
        f"|---|---:|---:|---:{'|---:|---:' if args.epochs else ''}|---:|"
    )
    for row, accs in per_model.items():
        keys = ("both", "class", "motion", *(("train_clip", "train_motion") if args.epochs else ()))
        cells = " | ".join(_median_cell([a[k] for a in accs]) for k in keys)
        print(f"| {row} | {cells} | {sum(int(a['collapsed']) for a in accs)} of {len(accs)} |")
    if epochs:
        print_epoch_parts(epochs, args.source)
    return 0


def _median_cell(values: list[float]) -> str:
    """The median of the values that were logged (NaN: not logged), or '-' when none was."""
    known = [v for v in values if not math.isnan(v)]
    return f"{statistics.median(known):.1f}" if known else "-"


def print_epoch_parts(epochs: list[tuple[str, int, dict[int, dict[str, float]]]], source: str) -> None:
    """One Markdown row per run and accuracy (clip, class part, motion part), one column per epoch."""
    last = max((max(per, default=0) for _, _, per in epochs), default=0)
    print(
        f"\nTraining accuracy of {source!r} per epoch (%, mean of the epoch's metrics.jsonl records):\n\n"
        + "| model | seed | accuracy | "
        + " | ".join(f"epoch {e}" for e in range(1, last + 1))
        + " |\n|---|---:|---|"
        + "---:|" * last
    )
    for row, seed, per in epochs:
        for part, label in (("clip", "clip"), ("class", "class part"), ("motion", "motion part")):
            cells = [f"{per[e][part]:.1f}" if part in per.get(e, {}) else "-" for e in range(1, last + 1)]
            print(f"| {row} | {seed} | {label} | {' | '.join(cells)} |")
