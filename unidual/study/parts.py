"""Which half of a compositional label a model gets right: the appearance ("cat") or the motion ("left").

CIFAR-motion labels are ``"<CIFAR class> <motion>"``. When a joint model's video@1 is low, this
tells whether it failed to learn the motion (the part only videos carry) or the appearance
(the part the images can teach). Run on a finished study:

    python -m unidual.study.parts configs/cpu/study/study.yaml --seeds 0 1 2

It re-evaluates the final weights of every finished run that was evaluated on ``--source`` (10 clips per video,
the study's eval settings) and prints one Markdown table: per run and seed, video@1 and the
share of test videos whose predicted label has the right class part / the right motion part,
then the median per model over the seeds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Sequence

from torch import Tensor


def split_label(name: str) -> tuple[str, str]:
    """``"automobile zoom_in"`` -> ``("automobile", "zoom_in")``: the appearance part and the motion part."""
    head, sep, tail = name.rpartition(" ")
    if not sep or not head or not tail:
        raise ValueError(f"label {name!r} is not '<class> <motion>'")
    return head, tail


def part_accuracy(predictions: Tensor, labels: Tensor, classes: Sequence[str]) -> dict[str, float]:
    """Percent of examples whose predicted label is right entirely / in its class part / in its motion part."""
    if len(labels) == 0:
        raise ValueError("no examples")
    parts = [split_label(c) for c in classes]
    pairs = list(zip(predictions.tolist(), labels.tolist()))
    n = len(pairs)
    return {
        "both": 100.0 * sum(p == y for p, y in pairs) / n,
        "class": 100.0 * sum(parts[p][0] == parts[y][0] for p, y in pairs) / n,
        "motion": 100.0 * sum(parts[p][1] == parts[y][1] for p, y in pairs) / n,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="study YAML (e.g. configs/cpu/study/study.yaml)")
    parser.add_argument("--out", help="study directory (default: the study's out:)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the study's seeds:)")
    parser.add_argument("--source", default="motion", help="the video source with '<class> <motion>' labels")


def main(args: argparse.Namespace) -> int:
    from unidual.study.config import StudyError, load_study
    from unidual.study.runner import RESULT_FILE, evaluate_run_sources, plan, read_result

    try:
        study = load_study(args.config)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else study.out
    rows, per_model = [], {}
    for task in plan(study, out, args.seeds or study.seeds):
        if not (task.run_dir / RESULT_FILE).is_file() or args.source not in read_result(task.run_dir)["metrics"]:
            continue  # not finished, or a model without that task (R2D)
        r = evaluate_run_sources(task.run_dir, [args.source], study.eval)[0][args.source]
        acc = part_accuracy(r.predictions, r.labels, r.classes)
        rows.append(f"| {task.model.row} | {task.seed} | {acc['both']:.1f} | {acc['class']:.1f} | {acc['motion']:.1f} |")
        per_model.setdefault(task.model.row, []).append(acc)
        print(f"{task.label}: {acc}", file=sys.stderr, flush=True)
    if not rows:
        print(f"error: no finished run in {out} reports {args.source!r}", file=sys.stderr)
        return 1
    print("| model | seed | video@1 (%) | class part right (%) | motion part right (%) |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\n| model | median video@1 | median class part | median motion part |\n|---|---:|---:|---:|")
    for row, accs in per_model.items():
        med = {k: statistics.median(a[k] for a in accs) for k in ("both", "class", "motion")}
        print(f"| {row} | {med['both']:.1f} | {med['class']:.1f} | {med['motion']:.1f} |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m unidual.study.parts", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
