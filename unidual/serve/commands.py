"""``unidual serve RUN [--host H] [--port P]``: the page and JSON API of :mod:`unidual.serve.app`."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from unidual.evaluate.predict import MAX_SIDE

EXTRA = "unidual serve needs FastAPI, uvicorn and python-multipart: pip install 'unidual[serve]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT", help="run directory (best.pt/last.pt) or .pt file")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=64.0, help="largest upload accepted (default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to read and predict one file (default %(default)s)"
    )
    parser.add_argument("--max-side", type=int, default=MAX_SIDE, help=f"as in predict (default {MAX_SIDE})")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(args: argparse.Namespace) -> int:
    for name in ("max_upload_mb", "timeout", "max_side"):
        if not getattr(args, name) > 0:
            print(f"unidual serve: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    try:
        import uvicorn

        from unidual.serve.app import create_app
    except ImportError:
        print(EXTRA, file=sys.stderr)
        return 2
    from unidual.checkpoint import CheckpointError

    try:
        app = create_app(
            args.checkpoint, max_upload_mb=args.max_upload_mb, timeout=args.timeout, max_side=args.max_side
        )
    except CheckpointError as exc:
        print(f"unidual serve: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(f"unidual serve: binding {args.host}: other machines can reach this server", file=sys.stderr)
    print(f"unidual serve: http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
