"""torchrun --max-restarts: a rank SIGKILLed mid-epoch, the job restarted, the run continued from last.pt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers.tinydata import tiny_config

from unidual import checkpoint as ckpt

PROJECT = Path(__file__).resolve().parents[2]

# The CLI; in the first attempt of the job (TORCHELASTIC_RESTART_COUNT=0) rank 1 SIGKILLs itself after update KILL_AT.
RUNNER = """
import os, signal, sys
from unidual.train import trainer as T
kill_at = int(os.environ.get("KILL_AT", "0"))
first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
update = T.Trainer._update
def _update(self):
    update(self)
    if first_attempt and self.env.rank == 1 and self.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
T.Trainer._update = _update
from unidual.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_killed_rank_restarted_by_torchrun_finishes_the_same_updates(tiny_sources, tmp_path):
    data = tiny_config(
        tiny_sources,
        aux={"frame": "middle"},
        schedule={"epochs": 2},
        optim={"batch_size": 2},
        data={"epoch_size": 32},
        run={"eval_every": 0, "save_every": 2, "log_every": 1},
    )
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT)}

    def job(out: str, kill_at: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "--max-restarts=1",
                "--monitor-interval=0.5",
                str(runner),
                "train",
                str(config),
                "--out",
                str(tmp_path / out),
            ],
            env={**env, "KILL_AT": str(kill_at)},
            capture_output=True,
            text=True,
            timeout=600,
        )

    plain = job("plain", kill_at=0)
    assert plain.returncode == 0, plain.stderr[-3000:]
    restarted = job("restarted", kill_at=5)  # epoch 1 has 8 updates: killed mid-epoch, last save at update 4
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resuming the run found there (same config)" in restarted.stderr

    a = ckpt.load_checkpoint(tmp_path / "plain" / "last.pt")
    b = ckpt.load_checkpoint(tmp_path / "restarted" / "last.pt")
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 16
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    records = [json.loads(line) for line in (tmp_path / "restarted" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 17))
