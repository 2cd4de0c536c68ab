"""``unidual weights`` (the published checkpoints unidual knows) and ``unidual convert`` (one as a checkpoint)."""

from __future__ import annotations

import argparse
import json
import sys

from unidual.convert import ConvertError, convert
from unidual.weights import WEIGHTS, WeightsError, cache_dir


# -- `unidual weights`: the registry ---------------------------------------------------------------
def weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print every entry as JSON")


def weights_main(args: argparse.Namespace) -> int:
    cache = cache_dir()
    rows = [{**w.to_dict(), "cached": (cache / w.filename).is_file()} for w in WEIGHTS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']}  ({r['architecture']})")
        print(f"    trained on:    {r['trained_on']}; {r['classes']} classes, head {r['head']!r}")
        print(f"    input:         {r['frames']}×{r['size']}×{r['size']} clips; {r['preprocessing']}")
        print(f"    url:           {r['url']}")
        print(f"    sha256:        {r['hash']}{'' if r['sha256'] else '… (prefix in the file name)'}")
        print(f"    licence:       {r['licence']}")
        print(f"    cached:        {'yes' if r['cached'] else 'no'} ({cache / r['filename']})")
    print(f"`unidual convert NAME --out CKPT.pt` downloads one into {cache} ($UNIDUAL_CACHE) and converts it")
    return 0


# -- `unidual convert NAME|URL|PATH --out CKPT.pt` ------------------------------------------------
def convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "weights",
        metavar="NAME|URL|PATH",
        help="a name of `unidual weights`, a URL, or a torchvision-layout R(2+1)D state_dict file",
    )
    parser.add_argument("--out", required=True, metavar="CKPT.pt", help="unidual checkpoint to write")
    parser.add_argument(
        "--sha256",
        metavar="HEX",
        help="SHA-256 (or a prefix of 8+ digits) the file must have; needed for a URL whose name carries none",
    )
    parser.add_argument(
        "--head", default=None, help="head / source key of the classifier (default: the entry's, else kinetics)"
    )
    parser.add_argument("--classes", metavar="FILE", help="class names: JSON list or one name a line")
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames per test clip (default: the entry's, else 16; ig65m files: 8 or 32, as in the name)",
    )
    parser.add_argument("--clips", type=int, default=10, help="uniform clips per test video (default: %(default)s)")
    parser.add_argument(
        "--bn-eps",
        type=float,
        default=None,
        help="BatchNorm epsilon (default: 1e-3 for the Caffe2/VMZ layout, else 1e-5)",
    )


def convert_main(args: argparse.Namespace) -> int:
    for name in ("frames", "clips"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"unidual convert: --{name} must be >= 1", file=sys.stderr)
            return 2
    if args.bn_eps is not None and not args.bn_eps > 0:
        print("unidual convert: --bn-eps must be > 0", file=sys.stderr)
        return 2
    try:
        spec = convert(
            args.weights,
            args.out,
            sha256=args.sha256,
            head=args.head,
            frames=args.frames,
            clips=args.clips,
            classes=args.classes,
            bn_eps=args.bn_eps,
        )
    except (ConvertError, WeightsError) as exc:
        print(f"unidual convert: {exc}", file=sys.stderr)
        return 2
    opts = spec["options"]
    head, classes = next(iter(spec["heads"].items()))
    print(
        f"wrote {args.out}: r2plus1d depth {spec['depth']}, {opts['layout']} mid-channel layout, "
        f"BatchNorm eps {opts['bn_eps']:g}, head {head!r} with {classes} classes, {opts['frames']}-frame clips"
    )
    return 0
