"""The commands that work on a checkpoint: ``eval``, ``predict``, ``export``, ``visualize``.

`unidual eval RUN_OR_CHECKPOINT`: multi-clip evaluation with the run's label maps.

The sources come from the checkpoint's ``config["sources"]`` (the run's own
source specs) and their label maps from ``sources[key]["classes"]``, so class
indices always mean what they meant in training. ``--data KEY=PATH`` points a
source at another root (and restricts evaluation to the named keys); a key the
checkpoint knows but its config does not becomes a ``folder`` source (protocol
A transform); PATH is either ``root`` (with ``test/<class>/``) or the class
folders themselves.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from unidual.checkpoint import WEIGHTS, CheckpointError, load_model
from unidual.data import DataError
from unidual.data.missing import report_missing
from unidual.data.sourcefile import read_source_file
from unidual.evaluate import metrics as M
from unidual.evaluate.datasets import build_test_datasets, shared_heads, source_specs
from unidual.evaluate.evaluator import SourceResult, evaluate_sources, format_table
from unidual.evaluate.export import FORMATS, export
from unidual.evaluate.predict import (
    MAX_SIDE,
    Prediction,
    expand_inputs,
    passed_over_note,
    predict_files,
)
from unidual.evaluate.visualize import visualize
from unidual.pathways import MODALITIES
from unidual.ranks import DEFAULT_TIMEOUT_S, DistEnv, env_from_torchrun, gather_objects, resolve_device, setup, teardown

DEVICE_HELP = "cpu, cuda, cuda:N or auto (default: the GPU if CUDA is available, else the CPU)"
WEIGHTS_HELP = "raw weights, or their moving average (runs with run.ema_decay); default: the better on validation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT", help="run directory (best.pt/last.pt) or .pt file")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=PATH|SOURCES.yaml",
        help="evaluate source KEY from PATH, or the sources of a sources.yaml "
        "(repeatable; default: every source of the run)",
    )
    parser.add_argument("--clips", type=int, default=None, help="clips per test video (default: the source's)")
    parser.add_argument("--three-crop", action="store_true", help="three spatial crops per clip instead of one")
    parser.add_argument("--weights", choices=WEIGHTS, default=None, help=WEIGHTS_HELP)
    parser.add_argument("--batch-size", type=int, default=32, help="views per forward pass")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--dist-timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="under torchrun: seconds a rank waits for the slowest one (default %(default)g)",
    )
    parser.add_argument("--json", action="store_true", help="print metrics as JSON")
    parser.add_argument(
        "--max-side",
        type=int,
        default=MAX_SIDE,
        help="longer side frames are scaled down to when the run's test transform keeps the "
        f"native size (default {MAX_SIDE})",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write metrics.json, per-class CSV and confusion CSV/PNG per source here"
    )


def parse_data_args(items: Sequence[str]) -> dict[str, str | dict[str, Any]]:
    """``["k=/p", "sources.yaml", ...]`` -> ``{"k": "/p", key: spec dict, ...}``; a clear error for a malformed item."""

    out: dict[str, str | dict[str, Any]] = {}
    for item in items:
        if "=" not in item and item.endswith((".yaml", ".yml")):
            for d in read_source_file(item):  # the file data check and train read
                if not isinstance(d.get("key"), str):
                    raise ValueError(f"--data {item}: a source has no 'key' (got {d.get('key')!r})")
                out[d["key"]] = d
            continue
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise ValueError(f"--data {item!r}: expected KEY=PATH")
        out[key] = path
    return out


def passed_over_files(spec: Mapping[str, Any], dataset: Any) -> list[Path]:
    """Files of a ``folder`` source's class folders (and the folder holding them) that the dataset
    did not take: README.md, .DS_Store, Thumbs.db and other non-media files."""
    if spec.get("format") != "folder":
        return []  # list / CSV formats select their files; the rest of a folder is not theirs
    taken = {Path(f) for f in getattr(dataset, "files", []) if "::" not in str(f)}
    class_dirs = {f.parent for f in taken}
    folders = class_dirs | {d.parent for d in class_dirs}
    return sorted(f for d in folders for f in d.iterdir() if f.is_file() and f not in taken)


def write_reports(results: Mapping[str, SourceResult], out: Path) -> dict[str, dict[str, float]]:
    """metrics.json plus ``<key>_per_class.csv`` and ``<key>_confusion.{csv,png}``."""
    out.mkdir(parents=True, exist_ok=True)
    table = {key: r.metrics() for key, r in results.items()}
    (out / "metrics.json").write_text(json.dumps(table, indent=2) + "\n")
    for key, r in results.items():
        conf = r.confusion()
        M.write_confusion_csv(conf, r.classes, out / f"{key}_confusion.csv")
        M.plot_confusion(conf, r.classes, out / f"{key}_confusion.png", title=f"{key} ({r.modality})")
        with (out / f"{key}_per_class.csv").open("w") as f:
            f.write("class,accuracy,examples\n")
            for name, acc, n in zip(r.classes, r.per_class().values(), conf.sum(dim=1).tolist()):
                f.write(f"{json.dumps(name)},{acc:.4f},{n}\n")
        if r.skipped:
            (out / f"{key}_skipped.txt").write_text("".join(f"{p}\t{why}\n" for p, why in r.skipped))
    return table


def main(args: argparse.Namespace) -> int:
    """One process, or one rank of ``torchrun -m unidual eval``: each rank evaluates a shard, rank 0 reports."""
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(
            f"unidual eval: --out {args.out}: exists and is not a folder (reports are written into a folder)",
            file=sys.stderr,
        )
        return 2
    try:
        env = env_from_torchrun()
        device = resolve_device(args.device, env)
        setup(env, device, timeout_s=args.dist_timeout_s)
    except (RuntimeError, ValueError) as exc:
        print(f"unidual eval: {exc}", file=sys.stderr)
        return 2
    try:
        return _evaluate(args, env, device)
    finally:
        teardown()


def _evaluate(args: argparse.Namespace, env: DistEnv, device: torch.device) -> int:
    error = None
    try:
        model, payload = load_model(args.checkpoint, deploy=True, map_location="cpu", weights=args.weights)
        if args.max_side < 1:
            raise ValueError(f"--max-side must be >= 1, got {args.max_side}")
        specs = source_specs(
            payload, parse_data_args(args.data), clips=args.clips, three_crop=args.three_crop, max_side=args.max_side
        )
        datasets = build_test_datasets(payload, specs)
    except (CheckpointError, DataError, KeyError, ValueError) as exc:
        error = str(exc)
    errors = [(rank, e) for rank, e in enumerate(gather_objects(error)) if e is not None]  # every rank stops
    if errors:
        rank, first = errors[0]
        if env.is_main:  # rank 0 speaks for all
            print(f"unidual eval: {first}" + (f" (on rank {rank})" if rank else ""), file=sys.stderr)
        return 2
    if env.is_main:
        passed_over = [f for key, ds in datasets.items() for f in passed_over_files(specs[key], ds)]
        if passed_over:
            print(passed_over_note(passed_over, "eval"), file=sys.stderr)
        for line in report_missing(datasets, "test", args.out):
            print(f"warning: {line}", file=sys.stderr)
    model.to(device)
    modalities = {key: spec["modality"] for key, spec in specs.items()}
    results = evaluate_sources(
        model,
        datasets,
        modalities,
        batch_size=args.batch_size,
        device=device,
        num_workers=args.workers,
        progress=sys.stderr.isatty(),
        distributed=True,
        head_of=shared_heads(payload),
    )
    if not env.is_main:
        return 0  # rank 0 holds the same results and writes them
    table = write_reports(results, args.out) if args.out else {k: r.metrics() for k, r in results.items()}
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    for key, r in results.items():
        for path, why in r.skipped:
            print(f"skipped {key}: {path}: {why}", file=sys.stderr)
    return 0


def max_side_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-side`` of ``predict`` and ``visualize``: the bound on native-size frames."""
    parser.add_argument(
        "--max-side",
        type=int,
        default=MAX_SIDE,
        help="longer side a frame is scaled down to when the run's test transform keeps "
        f"the native size (default {MAX_SIDE})",
    )


# -- `unidual predict CHECKPOINT FILE_OR_DIR...`: top-k classes per file ---------------------------------
def predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or run directory")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="images, videos or folders of them")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--weights", choices=WEIGHTS, default=None, help=WEIGHTS_HELP)
    parser.add_argument("--batch-size", type=int, default=8, help="files read per forward pass")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--json", action="store_true", help="one JSON list on stdout")
    max_side_argument(parser)


def _predict_print_text(results: Sequence[Prediction]) -> None:
    for r in results:
        if r.error:
            continue
        for head, top in r.top.items():
            best = ", ".join(f"{c} {s:.3f}" for c, s in top)
            print(f"{r.path} [{r.modality} -> {head}]: {best}")


def predict_main(args: argparse.Namespace) -> int:
    if args.topk < 1 or args.max_side < 1:
        print("unidual predict: --topk and --max-side must be >= 1", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device, DistEnv())
        model, payload = load_model(args.checkpoint, deploy=True, weights=args.weights)
    except (CheckpointError, RuntimeError) as exc:
        print(f"unidual predict: {exc}", file=sys.stderr)
        return 2
    passed_over: list[Path] = []
    files = expand_inputs(args.inputs, passed_over)
    if passed_over:
        print(passed_over_note(passed_over, "predict"), file=sys.stderr)
    if not files:
        print(f"unidual predict: no image or video files in {' '.join(args.inputs)}", file=sys.stderr)
        return 2
    results = predict_files(
        model,
        payload,
        files,
        topk=args.topk,
        batch_size=args.batch_size,
        device=device,
        progress=len(files) > 1 and sys.stderr.isatty(),
        max_side=args.max_side,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _predict_print_text(results)
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"unidual predict: skipped {r.path}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


# -- `unidual export RUN --pathway P --format F --out FILE`: one pathway as ONNX / torch.export .pt2 -----
def export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT")
    parser.add_argument("--pathway", choices=MODALITIES, required=True)
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", type=Path, required=True, help="model file; FILE.json gets the input description")
    parser.add_argument("--weights", choices=WEIGHTS, default=None, help=WEIGHTS_HELP)


def export_main(args: argparse.Namespace) -> int:
    if args.out.is_dir():
        print(f"unidual export: --out {args.out}: is a folder; give the model file's name", file=sys.stderr)
        return 2
    try:
        meta = export(args.checkpoint, args.pathway, args.format, args.out, weights=args.weights)
    except (CheckpointError, ValueError) as exc:
        print(f"unidual export: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out} ({meta['layout']}, outputs {meta['outputs']}, "
        f"{meta['folded_conv_bn']} conv+BN folded) and {args.out}.json"
    )
    return 0


# -- `unidual visualize RUN VIDEO --out FIG`: feature maps of the dual point-wise layers -----------------
def visualize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT")
    parser.add_argument("video", metavar="VIDEO")
    parser.add_argument(
        "--block",
        type=int,
        default=-1,
        help="residual block (0-based; -1 = last as in Figure 2, -3 = third-to-last as in Figure 3)",
    )
    parser.add_argument("--out", type=Path, required=True, help="PNG to write (.png is added to a name without one)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    max_side_argument(parser)


def visualize_main(args: argparse.Namespace) -> int:
    if args.out.is_dir():
        print(f"unidual visualize: --out {args.out}: is a folder; give the figure's file name", file=sys.stderr)
        return 2
    try:
        if args.max_side < 1:
            raise ValueError(f"--max-side must be >= 1, got {args.max_side}")
        device = resolve_device(args.device, DistEnv())
        info = visualize(args.checkpoint, args.video, args.out, block=args.block, device=device, max_side=args.max_side)
    except (CheckpointError, DataError, ValueError, RuntimeError) as exc:
        print(f"unidual visualize: {exc}", file=sys.stderr)
        return 2
    print(
        f"block {info['block']}: video pathway top channels {info['video_top']}, "
        f"image pathway top channels {info['image_top']} -> {info['out']}"
    )
    return 0
