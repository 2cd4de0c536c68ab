"""unidual.ranks: the collective timeout reaches the process group; --device auto picks the CPU here."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from unidual.cli import _command_parser
from unidual.cli import main as cli
from unidual.ranks import DistEnv, resolve_device, setup, teardown


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_a_missing_rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    setup(DistEnv(rank, 2, rank), torch.device("cpu"), timeout_s=3)
    done = Path(out, "done")
    if rank == 1:  # joins the group, then never enters the collective (alive, so no connection error)
        deadline = time.monotonic() + 90
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return
    start = time.monotonic()
    try:
        dist.all_reduce(torch.ones(1))
        outcome = "returned"
    except RuntimeError as exc:
        outcome = f"raised after {time.monotonic() - start:.1f} s: {exc}"
    Path(out, "rank0.txt").write_text(outcome)
    done.touch()
    teardown()


def test_setup_timeout_bounds_a_collective(tmp_path):
    """With timeout_s=3 a rank waiting for a peer that never comes fails in seconds (the default: 30 min)."""
    mp.start_processes(
        _wait_for_a_missing_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    outcome = (tmp_path / "rank0.txt").read_text()
    assert outcome.startswith("raised after"), outcome
    assert float(outcome.split()[2]) < 30, outcome


def test_timeout_must_be_positive(capsys):
    with pytest.raises(ValueError, match="positive number of seconds"):
        setup(DistEnv(), torch.device("cpu"), timeout_s=0)
    assert cli(["eval", "no-such-run", "--dist-timeout-s", "-1"]) == 2
    assert "positive number of seconds, got -1" in capsys.readouterr().err


def test_device_auto_is_the_default_and_resolves_to_this_machine(monkeypatch):
    for command, args in (
        ("eval", ["RUN"]),
        ("predict", ["CKPT", "x.jpg"]),
        ("visualize", ["CKPT", "v.mp4", "--out", "f.png"]),
    ):
        assert _command_parser(command).parse_args(args).device == "auto", command
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", DistEnv()).type == here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", DistEnv()) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("command", ["eval", "predict", "visualize"])
def test_cuda_without_cuda_is_a_one_line_error(command, tmp_path, capsys):
    args = {
        "eval": [],
        "predict": [str(tmp_path)],
        "visualize": [str(tmp_path / "v.mp4"), "--out", str(tmp_path / "f.png")],
    }
    assert cli([command, str(tmp_path / "run"), *args[command], "--device", "cuda"]) == 2  # before any file is read
    err = capsys.readouterr().err.strip()
    assert err == f"unidual {command}: device 'cuda' asked for but CUDA is not available; use cpu or auto"
