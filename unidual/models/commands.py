"""``unidual models`` (the registered models) and ``unidual info NAME`` (parameters and compute)."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from unidual.models.registry import create_model, describe, list_models
from unidual.models.report import DEFAULT_HEADS, format_report, report
from unidual.models.resnet import DEPTHS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object {name: description}")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "json", False):
        print(json.dumps({n: describe(n) for n in list_models()}, indent=2))
        return 0
    for n in list_models():
        print(f"{n:<20} {describe(n)}")
    print(f"depths: {sorted(DEPTHS)}  (basic <= 34, bottleneck >= 50); see `unidual info NAME`")
    return 0


# -- `unidual info NAME` ----------------------------------------------------
def parse_heads(text: str) -> tuple[dict[str, int], dict[str, str]]:
    """'imagenet=1000:image,kinetics=400:video' -> heads, modalities."""
    heads, modalities = {}, {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            key, rest = item.split("=", 1)
            n, modality = rest.split(":", 1) if ":" in rest else (rest, "video")
            heads[key] = int(n)
            modalities[key] = modality
        except ValueError:
            raise ValueError(f"--heads: cannot parse {item!r}; expected KEY=CLASSES:MODALITY") from None
    return heads, modalities


def info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=list_models(), help="model name (see `unidual models`)")
    model_options(parser)


def model_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``unidual info NAME`` after the name (shared with ``unidual info CONFIG``)."""
    parser.add_argument("--depth", type=int, default=34)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=8, help="clip length L")
    parser.add_argument("--size", type=int, default=112, help="spatial crop size")
    parser.add_argument("--heads", default=DEFAULT_HEADS, help=f"KEY=CLASSES:MODALITY,... (default {DEFAULT_HEADS})")
    parser.add_argument("--layout", default="vmz", choices=["vmz", "torchvision"])
    parser.add_argument("--maxpool", action="store_true", help="1x3x3 max-pool after the stem")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def info_main(args: argparse.Namespace) -> int:
    try:
        heads, modalities = parse_heads(args.heads)
        with torch.device("meta"):
            model = create_model(
                args.name,
                depth=args.depth,
                width=args.width,
                heads=heads,
                modalities=modalities,
                frames=args.frames,
                layout=args.layout,
                maxpool=args.maxpool,
            )
    except (ValueError, TypeError) as exc:
        print(f"unidual info: {exc}", file=sys.stderr)
        return 2
    info = report(model, frames=args.frames, size=args.size)
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return 0
