"""The one `unidual` command.

Each sub-command lives beside the code it drives: its module exposes
``add_arguments(parser)`` and ``main(args) -> int``. Only the chosen
sub-command's module is imported, so `unidual --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("unidual.models.registry", "list the registered model names"),
    "info": ("unidual.models.report", "parameter count and compute of a model"),
    "data": ("unidual.data.commands", "check datasets, build the built-in datasets"),
    "train": ("unidual.train.commands", "train from a YAML config"),
    "demo": ("unidual.train.demo", "train UniDual-Aux on the embedded dataset and compare"),
    "eval": ("unidual.evaluate.commands", "evaluate a run or checkpoint"),
    "predict": ("unidual.evaluate.predict", "top-k classes for image/video files"),
    "export": ("unidual.evaluate.export", "export one pathway to ONNX or TorchScript"),
    "visualize": ("unidual.evaluate.visualize", "feature maps of the dual point-wise layers"),
    "study": ("unidual.study", "the paper's comparative study (Tables 2 and 3)"),
}


def _parser(selected: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unidual", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    if selected not in COMMANDS:
        selected = None
    args = _parser(selected).parse_args(argv)
    if args.command is None:
        _parser(None).print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
