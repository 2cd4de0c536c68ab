"""``unidual data``: check a dataset, build the built-in datasets."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from unidual.data.builtin import VIDEO_LABELS, make_default_dataset
from unidual.data.check import check_dataset, format_report
from unidual.data.errors import DataError
from unidual.data.mirror import shown
from unidual.data.motion import DEFAULT_MOTIONS, build_motion_dataset
from unidual.data.prepare import UNREADABLE, OutputError, PrepareOptions, prepare_dataset
from unidual.data.prepare_sources import prepare_sources


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    check = sub.add_parser("check", help="validate a dataset (counts, frames, unreadable files)")
    check.add_argument(
        "path", help="sources.yaml, a folder holding one, a class folder, a .tar(.gz), a CSV or a list file"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--split", choices=("train", "test", "both"), default="both")
    check.add_argument("--limit", type=int, default=None, help="check only the first N examples of each split")
    check.add_argument(
        "--deep", action="store_true", help="decode every frame (default: fast, container headers and packet indexes)"
    )
    check.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 8),
        help="processes checking files in parallel (default: the CPU count, at most 8)",
    )

    prep = sub.add_parser(
        "prepare", help="re-encode a video dataset small, with frequent keyframes (a mirror tree, or a sources file)"
    )
    prep.add_argument(
        "src",
        help="dataset folder (class folders, lists, CSVs: the tree is mirrored), or a sources.yaml "
        "(every file its sources name; DST gets the matching sources.yaml)",
    )
    prep.add_argument("dst", help="output folder; files already there are skipped (resumable)")
    prep.add_argument("--short-side", type=int, required=True, help="shorter side in pixels (never upscaled)")
    prep.add_argument("--keyframe-interval", type=int, default=16, help="frames between keyframes (default 16)")
    prep.add_argument("--images", action="store_true", help="resize images to --short-side too (default: copy)")
    prep.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 8),
        help="processes encoding in parallel (default: the CPU count, at most 8)",
    )

    default = sub.add_parser("make-default", help="write the small synthetic demo dataset")
    default.add_argument("out")
    default.add_argument("--seed", type=int, default=0)
    sizes = make_default_dataset.__kwdefaults__  # one place for the default counts: the generator's signature
    assert sizes is not None  # its keyword-only parameters all have defaults
    default.add_argument(
        "--images-per-class",
        type=int,
        nargs=2,
        metavar=("TRAIN", "TEST"),
        default=list(sizes["images_per_class"]),
        help="shape images per class and split (default: %(default)s)",
    )
    default.add_argument(
        "--videos-per-class",
        type=int,
        nargs=2,
        metavar=("TRAIN", "TEST"),
        default=list(sizes["videos_per_class"]),
        help="moving-shape videos per class and split (default: %(default)s; the demo: 6 64)",
    )
    default.add_argument(
        "--video-labels",
        choices=VIDEO_LABELS,
        default=sizes["video_labels"],
        help="'<shape> <direction>', 16 classes (default), or the shape only, the images' 6 classes (the demo)",
    )

    motion = sub.add_parser("build-motion", help="turn an image class folder/archive into a motion-video dataset")
    motion.add_argument("image_root", help="folder or .tar(.gz) with train/<class>/ and test/<class>/")
    motion.add_argument("out")
    motion.add_argument(
        "--motions", nargs="+", default=None, help="from: left right up down zoom_in zoom_out rotate_cw rotate_ccw"
    )
    motion.add_argument("--frames", type=int, default=8)
    motion.add_argument("--size", type=int, default=32)
    motion.add_argument("--train-videos", type=int, default=3000)
    motion.add_argument("--test-videos", type=int, default=600)
    motion.add_argument("--image-train", type=int, default=None, help="cap on image-train examples (default: all left)")
    motion.add_argument("--image-test", type=int, default=None)
    motion.add_argument("--seed", type=int, default=0)
    motion.add_argument(
        "--video-labels",
        choices=VIDEO_LABELS,
        default="class_motion",
        help="label a video '<class> <motion>' (default) or by its photo's class only (the image source's classes)",
    )


def _check(args: argparse.Namespace) -> int:
    splits = ("train", "test") if args.split == "both" else (args.split,)
    if args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    report = check_dataset(
        args.path, splits=splits, limit=args.limit, deep=args.deep, workers=args.workers, progress=sys.stderr.isatty()
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["usable"] else 1


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _prepare(args: argparse.Namespace) -> int:
    if args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    opts = PrepareOptions(short_side=args.short_side, keyframe_interval=args.keyframe_interval, images=args.images)
    run = prepare_sources if Path(args.src).suffix.lower() in (".yaml", ".yml") else prepare_dataset
    result = run(args.src, args.dst, opts, workers=args.workers, progress=sys.stderr.isatty())
    print(
        f"{shown(result['dst'])}: {result['written']} written, {result['already_done']} already done, "
        f"{result['lists']} list/CSV files rewritten, {len(result['unreadable'])} unreadable"
    )
    for bad in result["unreadable"][:20]:
        print(f"  unreadable (skipped): {shown(bad['path'])}: {bad['reason']}")
    if result["dropped_lines"]:
        print(f"  {_plural(len(result['dropped_lines']), 'list line')} dropped: the video named was not written")
    if result["unknown_lines"]:
        print(
            f"  {_plural(result['unknown_lines'], 'list line')} names a video not in {shown(result['src'])} "
            "(left as it was; `unidual data check` lists missing files)"
        )
    if result["unreadable"] or result["dropped_lines"]:
        print(f"  full list: {shown(Path(result['dst']) / UNREADABLE)}")
    for note in result["notes"]:
        print(f"  {note}")
    return 0


def _make_default(args: argparse.Namespace) -> int:
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"error: {args.out}: exists and is not a folder", file=sys.stderr)
        return 2
    if min(args.images_per_class + args.videos_per_class) < 1:
        print("error: --images-per-class and --videos-per-class need two counts >= 1", file=sys.stderr)
        return 2
    specs = make_default_dataset(
        args.out,
        seed=args.seed,
        images_per_class=tuple(args.images_per_class),
        videos_per_class=tuple(args.videos_per_class),
        video_labels=args.video_labels,
    )
    for key, spec in specs.items():
        print(f"{key}: {spec.modality} ({spec.format}) at {spec.root}")
    print(f"source specs: {args.out}/sources.yaml")
    return 0


def _build_motion(args: argparse.Namespace) -> int:
    bar = tqdm(unit="video", desc="build-motion", disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    specs = build_motion_dataset(
        args.image_root,
        args.out,
        motions=tuple(args.motions or DEFAULT_MOTIONS),
        frames=args.frames,
        size=args.size,
        train_videos=args.train_videos,
        test_videos=args.test_videos,
        image_train=args.image_train,
        image_test=args.image_test,
        seed=args.seed,
        video_labels=args.video_labels,
        progress=progress,
    )
    bar.close()
    for key, spec in specs.items():
        print(f"{key}: {spec.modality} ({spec.format}), {len(spec.classes or [])} classes, root {spec.root}")
    print(f"source specs: {args.out}/sources.yaml")
    return 0


def main(args: argparse.Namespace) -> int:
    handlers = {"check": _check, "prepare": _prepare, "make-default": _make_default, "build-motion": _build_motion}
    if getattr(args, "data_command", None) not in handlers:
        print(
            "usage: unidual data {check,prepare,make-default,build-motion} ... (see unidual data --help)",
            file=sys.stderr,
        )
        return 2
    try:
        return handlers[args.data_command](args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if args.data_command == "prepare" else 1
    except OutputError as exc:
        print(
            f"unidual data {args.data_command}: {exc}: every file with its final name is complete; "
            "free some space and run the same command again",
            file=sys.stderr,
        )
        return 1
