"""The one `unidual` command.

Each sub-command lives in the ``commands`` module beside the code it drives, which
exposes ``add_arguments(parser)`` and ``main(args) -> int`` (``PREFIX_arguments`` /
``PREFIX_main`` when the entry reads ``module:PREFIX``, for two commands in one module). Only the chosen
sub-command's module is imported, so `unidual --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from unidual.atomicfile import output_errno
from unidual.runtime import tune_allocator

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("unidual.models.commands", "list the registered model names"),
    "info": ("unidual.train.info", "parameters and compute of a model; --memory: a training config's memory"),
    "data": ("unidual.data.commands", "check datasets, build the built-in datasets"),
    "train": ("unidual.train.commands", "train from a YAML config"),
    "demo": ("unidual.train.commands:demo", "train UniDual-Aux on the embedded dataset and compare"),
    "eval": ("unidual.evaluate.commands", "evaluate a run or checkpoint"),
    "predict": ("unidual.evaluate.commands:predict", "top-k classes for image/video files"),
    "weights": ("unidual.evaluate.pretrained_commands:weights", "published R(2+1)D weights unidual can fetch"),
    "convert": (
        "unidual.evaluate.pretrained_commands:convert",
        "published R(2+1)D weights (name, URL or file) -> a unidual checkpoint",
    ),
    "export": ("unidual.evaluate.commands:export", "export one pathway to ONNX or a torch.export .pt2"),
    "features": ("unidual.evaluate.features", "pooled embeddings of image/video files -> .npz"),
    "serve": ("unidual.serve.commands", "a local web page and JSON API to try a checkpoint on a file"),
    "visualize": ("unidual.evaluate.commands:visualize", "feature maps of the dual point-wise layers"),
    "study": ("unidual.study.commands", "the paper's comparative study (Tables 2 and 3)"),
    "study-parts": ("unidual.study.commands:parts", "which half of '<class> <motion>' labels a study's runs get right"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unidual", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def _entry(name: str, what: str):
    """``add_arguments`` / ``main`` (or ``PREFIX_arguments`` / ``PREFIX_main``) of a command's module."""
    module, _, prefix = COMMANDS[name][0].partition(":")
    attr = {"arguments": "add_arguments", "main": "main"}[what] if not prefix else f"{prefix}_{what}"
    return getattr(importlib.import_module(module), attr)


def _command_parser(name: str) -> argparse.ArgumentParser:
    help_text = COMMANDS[name][1]
    parser = argparse.ArgumentParser(prog=f"unidual {name}", description=help_text)
    _entry(name, "arguments")(parser)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options may come before or after ``key=value`` overrides (``train C x=1 --out D y=2``)."""
    try:
        return parser.parse_intermixed_args(argv)
    except TypeError:  # commands with their own sub-commands (``unidual data ...``)
        return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _parser()
        parser.parse_args(argv)  # --help, or an error naming the valid commands
        parser.print_help()
        return 2
    name = argv[0]
    label = " ".join(argv[:2]) if name == "data" and len(argv) > 1 and not argv[1].startswith("-") else name
    interrupted = _InterruptFlag()
    try:
        args = _parse(_command_parser(name), argv[1:])  # imports the command's module (torch): seconds
        tune_allocator()  # every command: reuse freed tensor memory (unidual/runtime.py)
        args.command = name
        code = int(_entry(name, "main")(args) or 0)
        if interrupted.seen and code == 0:  # a Ctrl-C a finalizer swallowed (a worker pool's cleanup);
            raise KeyboardInterrupt  # a command that reported its interrupt returned 130 itself
        return code
    except BaseException as exc:
        if interrupted.seen or isinstance(exc, KeyboardInterrupt):
            # Ctrl-C: one line and the shell's status for SIGINT, also when it cut an import short and the
            # error that surfaced is an ImportError (``train`` and ``study`` save and report it themselves)
            print(f"\nunidual {label}: interrupted", file=sys.stderr)
            return 130
        if isinstance(exc, OSError) and exc.filename is not None:  # a path that cannot be used (--out a file)
            print(f"unidual {label}: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return 1 if output_errno(exc) is not None else 2
        raise
    finally:
        interrupted.restore()


class _InterruptFlag:
    """SIGINT raises KeyboardInterrupt as Python's default does, and is remembered: an interrupt landing
    inside an import can surface as another error, and one landing in a finalizer (a worker pool's
    cleanup) is swallowed by Python with an "Exception ignored" traceback; both must still end in the
    one "interrupted" line, so the swallowed one is kept off stderr here and reported by ``main``."""

    def __init__(self) -> None:
        self.seen = False
        self.previous: Any = None
        self.unraisable = sys.unraisablehook
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
            sys.unraisablehook = self._unraisable

    def _handle(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def _unraisable(self, info: Any) -> None:
        if not (self.seen and isinstance(info.exc_value, KeyboardInterrupt)):
            self.unraisable(info)

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            sys.unraisablehook = self.unraisable


if __name__ == "__main__":
    sys.exit(main())
