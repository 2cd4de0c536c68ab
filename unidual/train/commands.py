"""``unidual train CONFIG [key=value ...] [--resume RUN_DIR] [--out DIR]``.

Under ``torchrun --nproc_per_node=K -m unidual train ...`` every process runs this;
only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unidual.checkpoint import CheckpointError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config (optional with --resume: the run's config.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides parsed as YAML, e.g. optim.lr=0.05 schedule.epochs=3")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: run.out/run.name)")
    parser.add_argument("--check", action="store_true", help="validate the config, print it resolved, exit")


def _split_positionals(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """With --resume the config is optional, so a first ``key=value`` is an override, not a file."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).is_file():
        overrides.insert(0, config)
        config = None
    return config, overrides


def main(args: argparse.Namespace) -> int:
    from unidual.train.config import ConfigError, load_config

    config, overrides = _split_positionals(args)
    try:
        if args.resume:
            run_dir = Path(args.resume)
            source = Path(config) if config else run_dir / "config.yaml"
            if not (run_dir / "last.pt").is_file():
                raise ConfigError(f"{run_dir}: no last.pt to resume from")
        elif config is None:
            raise ConfigError("command line: give a CONFIG file (or --resume RUN_DIR)")
        else:
            run_dir, source = (Path(args.out) if args.out else None), Path(config)
        cfg = load_config(source, overrides)
    except ConfigError as exc:
        print(f"unidual train: {exc}", file=sys.stderr)
        return 2
    if args.check:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0

    from unidual.train.trainer import Interrupted, TrainingError, train
    from unidual.train import distributed as D

    try:
        result = train(cfg, run_dir=run_dir, resume=bool(args.resume))
    except Interrupted as exc:
        print(f"unidual train: {exc}", file=sys.stderr)
        return 130
    except (TrainingError, CheckpointError) as exc:
        print(f"unidual train: {exc}", file=sys.stderr)
        return 1
    finally:
        D.teardown()
    if D.env_from_torchrun().is_main:
        from unidual.evaluate.evaluator import format_table

        if result.metrics:
            print(format_table(result.metrics, _columns(result.metrics)))
        print(f"run directory: {result.run_dir}")
    return 0


def _columns(metrics: dict) -> list[str]:
    wanted = ["top1", "clip@1", "video@1", "top5", "video@5", "examples"]
    present = {m for row in metrics.values() for m in row}
    return [c for c in wanted if c in present]
