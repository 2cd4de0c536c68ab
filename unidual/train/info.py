"""``unidual info NAME|CONFIG [--memory]``: a model's parameters and compute, or a training config's memory.

``unidual info NAME`` (a registered model) is :mod:`unidual.models.commands`' report. Given a
training config (YAML, with ``key=value`` overrides as ``unidual train`` takes them) it reports
the config's model at its clip size, and with ``--memory`` the memory one process (one GPU) of
that training needs: parameters, gradients, optimizer state, saved activations and the peak of
a step, traced on fake tensors (:mod:`unidual.train.footprint`) -- before any data is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from unidual.models import commands as model_commands
from unidual.models.registry import list_models
from unidual.models.report import format_report, report
from unidual.yamlconfig import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="model name (see `unidual models`) or a training config (YAML)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, as `unidual train`")
    parser.add_argument(
        "--memory", action="store_true", help="training config: estimate the memory of one process (GPU)"
    )
    parser.add_argument(
        "--classes",
        default="",
        metavar="KEY=N,...",
        help="config: classes per source where the config does not list them (else 1000)",
    )
    model_commands.model_options(parser)
    parser.set_defaults(size=None)  # a config's crop decides; --size only for sources without one


MODEL_SIZE = 112  # `unidual info NAME`'s default crop


def main(args: argparse.Namespace) -> int:
    if args.target in list_models():
        if args.memory or args.overrides:
            print(f"unidual info: --memory and key=value overrides need a training config, not the model name "
                  f"{args.target!r}", file=sys.stderr)  # fmt: skip
            return 2
        args.name = args.target
        args.size = MODEL_SIZE if args.size is None else args.size
        return model_commands.info_main(args)
    if not Path(args.target).is_file():
        print(
            f"unidual info: {args.target!r} is neither a model name (see `unidual models`) nor a config file",
            file=sys.stderr,
        )
        return 2
    return config_info(args)


def _parse_classes(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--classes: cannot parse {item!r}; expected KEY=N with N >= 1")
        out[key] = int(n)
    return out


def config_info(args: argparse.Namespace) -> int:
    from unidual.data.errors import DataError
    from unidual.train.build import model_for_config
    from unidual.train.config import load_config
    from unidual.train.footprint import batch_plan, estimate_config, format_footprint

    try:
        cfg = load_config(args.target, args.overrides)
        plan = batch_plan(cfg, _parse_classes(args.classes), args.size)
        if args.memory:
            fp = estimate_config(cfg, plan)
            print(json.dumps(fp.to_dict(), indent=2) if args.json else format_footprint(fp, f"{args.target}:"))
            return 0
        with torch.device("meta"):
            model = model_for_config(cfg, plan.classes)
    except (ConfigError, DataError, ValueError, TypeError) as exc:
        print(f"unidual info: {args.target}: {exc}" if str(args.target) not in str(exc) else f"unidual info: {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    shape = next(iter(plan.shapes.values()))
    frames = shape[2] if len(shape) == 5 else (cfg.model.frames or 8)
    info = report(model, frames=frames, size=shape[-1])
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return 0
