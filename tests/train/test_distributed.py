"""Two gloo processes under torchrun: identical weights on both ranks, close to one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers.tinydata import tiny_config

from unidual.train.distributed import DistEnv, env_from_torchrun, wrap

PROJECT = Path(__file__).resolve().parents[2]

RUNNER = """
import os, sys, torch
from unidual.train.config import load_config
from unidual.train.trainer import Trainer
from unidual.train import distributed as D
cfg = load_config(sys.argv[1], sys.argv[3:])
trainer = Trainer(cfg, run_dir=sys.argv[2])
os.makedirs(sys.argv[2], exist_ok=True)
torch.save(trainer.model.state_dict(), f"{sys.argv[2]}/init{trainer.env.rank}-of-{trainer.env.world_size}.pt")
trainer.fit()
torch.save(trainer.model.state_dict(), f"{sys.argv[2]}/rank{trainer.env.rank}-of-{trainer.env.world_size}.pt")
D.teardown()
"""


def test_env_defaults_to_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_from_torchrun() == DistEnv(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(RuntimeError, match="outside WORLD_SIZE"):
        env_from_torchrun()


def test_sync_bn_refused_on_cpu():
    with pytest.raises(RuntimeError, match="sync_bn"):
        wrap(torch.nn.BatchNorm2d(3), DistEnv(), torch.device("cpu"), sync_bn=True)


@pytest.mark.slow
def test_two_gloo_ranks_match_each_other_and_one_process(tiny_sources, tmp_path):
    # Deterministic inputs (no crop / flip, clips as long as the videos, middle frame for aux).
    # The one-process reference keeps the global batch of 4 as 2 micro-batches of 2 (accumulate=2):
    # BatchNorm then normalises the same 2-example sub-batches as each rank does, so the results
    # must agree up to float summation order.
    data = tiny_config(
        tiny_sources,
        aux={"frame": "middle"},
        schedule={"epochs": 1},
        optim={"lr": 0.01, "momentum": 0.0},
        run={"eval_every": 0, "plots": False},
    )
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT)}
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(runner),
            str(config),
            str(tmp_path / "ddp"),
            "optim.batch_size=2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, str(runner), str(config), str(tmp_path / "one"), "optim.batch_size=2", "optim.accumulate=2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    r0 = torch.load(tmp_path / "ddp" / "rank0-of-2.pt", weights_only=True)
    r1 = torch.load(tmp_path / "ddp" / "rank1-of-2.pt", weights_only=True)
    single = torch.load(tmp_path / "one" / "rank0-of-1.pt", weights_only=True)
    init = torch.load(tmp_path / "one" / "init0-of-1.pt", weights_only=True)
    init_ddp = torch.load(tmp_path / "ddp" / "init1-of-2.pt", weights_only=True)
    params = [k for k, v in r0.items() if v.is_floating_point() and "running" not in k]
    for k in params:
        assert torch.equal(init[k], init_ddp[k]), f"initial weights differ on {k}"
        assert torch.equal(r0[k], r1[k]), f"ranks disagree on {k}"
    # only rank 0 wrote the run directory files
    assert (tmp_path / "ddp" / "last.pt").is_file()
    ddp = torch.cat([r0[k].flatten() for k in params])
    ref = torch.cat([single[k].flatten() for k in params])
    start = torch.cat([init[k].flatten() for k in params])
    moved = (ref - start).norm()
    gap = (ddp - ref).norm()
    print(f"update norm {moved:.4f}, DDP vs one process {gap:.4f}")
    assert moved > 1e-3 and gap < 1e-3 * moved
