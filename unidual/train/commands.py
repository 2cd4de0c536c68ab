"""``unidual train CONFIG [key=value ...] [--resume RUN_DIR] [--out DIR]``.

Under ``torchrun --nproc_per_node=K -m unidual train ...`` every process runs this;
only rank 0 writes files. A job torchrun restarted (``--max-restarts``; it sets
``TORCHELASTIC_RESTART_COUNT``) resumes the checkpoint its earlier attempt left in
``--out`` when that checkpoint is of the same config, as ``--auto-resume`` asks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from unidual.checkpoint import CheckpointError, CheckpointWriteError
from unidual.data import DataError
from unidual.evaluate.evaluator import format_table
from unidual.run import Run, RunDirError
from unidual.train import distributed as D
from unidual.train.config import ConfigError, load_config
from unidual.train.demo import COMPARE_CONFIG, DEMO_CONFIG, format_results, run_demo
from unidual.train.recipe import recipe_block
from unidual.train.trainer import Interrupted, TrainingError, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config (optional with --resume: the run's config.yaml)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides parsed as YAML, e.g. optim.lr=0.05 schedule.epochs=3",
    )
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: run.out/run.name)")
    parser.add_argument(
        "--auto-resume",
        action="store_true",
        help="if --out already holds a checkpoint of this same config, continue it "
        "(on by itself in a job torchrun restarted)",
    )
    parser.add_argument(
        "--check", action="store_true", help="validate the config, print it resolved and its recipe switches, exit"
    )


def restarted_by_torchrun() -> bool:
    """True in the 2nd, 3rd, ... attempt of a torchrun job (``--max-restarts``)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    except ValueError:
        return False


def _split_positionals(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """With --resume the config is optional, so a first ``key=value`` is an override, not a file."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).is_file():
        overrides.insert(0, config)
        config = None
    return config, overrides


def main(args: argparse.Namespace) -> int:
    config, overrides = _split_positionals(args)
    run_dir: Path | None
    try:
        if args.resume:
            run = Run(args.resume)
            run_dir, source = run.path, (Path(config) if config else run.config_file)
            if not run.has_checkpoint():
                raise ConfigError(f"{run.path}: no {Run.LAST} to resume from")
        elif config is None:
            raise ConfigError("command line: give a CONFIG file (or --resume RUN_DIR)")
        else:
            run_dir, source = (Path(args.out) if args.out else None), Path(config)
        cfg = load_config(source, overrides)
    except ConfigError as exc:
        print(f"unidual train: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        print(recipe_block(cfg))
        return 0

    auto = bool(args.auto_resume) or restarted_by_torchrun()
    try:
        result = train(cfg, run_dir=run_dir, resume=bool(args.resume), auto_resume=auto and not args.resume)
    except Interrupted as exc:
        print(f"unidual train: {exc}", file=sys.stderr)
        return 130
    except (TrainingError, CheckpointWriteError) as exc:
        print(f"unidual train: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (ConfigError, DataError, RunDirError, CheckpointError) as exc:  # config, data, --out or checkpoint
        print(f"unidual train: {_one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        D.teardown()
    if D.env_from_torchrun().is_main:
        if result.metrics:
            print(format_table(result.metrics, _columns(result.metrics)))
        print(f"run directory: {result.run_dir}")
    return 0


def _one_line(exc: BaseException) -> str:
    """A DataLoader worker re-raises with the worker's traceback in the message: keep the error itself."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught "):
        return lines[-1].split(": ", 1)[-1]
    return lines[0] if lines else type(exc).__name__


def _columns(metrics: dict) -> list[str]:
    wanted = ["top1", "clip@1", "video@1", "top5", "video@5", "examples"]
    present = {m for row in metrics.values() for m in row}
    return [c for c in wanted if c in present]


# -- `unidual demo`: UniDual-Aux and a video-only R(2+1)D on the embedded dataset --------------------
def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides applied to both runs, e.g. schedule.epochs=2",
    )
    parser.add_argument("--out", metavar="DIR", help="demo directory (default: runs/demo-<time>)")
    parser.add_argument("--data", metavar="DIR", help="dataset folder, generated if absent (default: runs/demo-data)")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="UniDual-Aux config (default: %(default)s)")
    parser.add_argument(
        "--compare-config", default=str(COMPARE_CONFIG), help="video-only comparison config (default: %(default)s)"
    )
    parser.add_argument("--no-compare", action="store_true", help="skip the R(2+1)D comparison run")
    parser.add_argument(
        "--small", action="store_true", help="a much smaller dataset (smoke tests; accuracies mean little)"
    )


def demo_main(args: argparse.Namespace) -> int:
    try:
        report = run_demo(args)
    except (ConfigError, DataError, TrainingError, CheckpointError) as exc:
        print(f"unidual demo: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"unidual demo: {exc}", file=sys.stderr)
        return 130
    print(format_results(report["rows"], report["chance"]))
    print(f"run directory: {report['out']}  ({report['seconds'] / 60:.1f} min on {report['machine']})")
    return 0
