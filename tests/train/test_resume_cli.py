"""`unidual train` on the command line, and exact resume after SIGKILL mid-epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from helpers.killable import killable_train
from helpers.tinydata import tiny_config

from unidual import checkpoint as ckpt
from unidual.cli import main as cli


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_train_with_overrides_and_check(tiny_sources, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config(tiny_sources))
    assert cli(["train", str(config), "optim.lr=0.02", "--check"]) == 0
    assert "lr: 0.02" in capsys.readouterr().out
    assert cli(["train", str(config), "optim.lrr=0.02"]) == 2
    assert "unknown key 'optim.lrr'" in capsys.readouterr().err
    out = tmp_path / "run"
    assert cli(["train", str(config), "schedule.epochs=1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "video@1" in printed and f"run directory: {out}" in printed
    assert ckpt.load_checkpoint(out)["config"]["schedule"]["epochs"] == 1.0
    # --resume of a finished run with a longer schedule continues from its last.pt
    assert cli(["train", "--resume", str(out), "schedule.epochs=2"]) == 0
    assert ckpt.load_checkpoint(out / "last.pt")["train_state"]["global_step"] == 8


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tiny_sources, tmp_path):
    data = tiny_config(
        tiny_sources,
        schedule={"epochs": 3, "warmup_epochs": 1, "kind": "step", "step_epochs": 1},
        aux={"routing": "random", "p": 0.5, "frame": "random"},
        run={"save_every": 2, "log_every": 1},
    )
    config = write_config(tmp_path / "c.yaml", data)
    run = killable_train(tmp_path)

    full = run(str(config), "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    killed = run(str(config), "--out", str(tmp_path / "killed"), kill_at=7)  # epoch 2 of 3, after update 7
    assert killed.returncode == -9
    state = ckpt.load_checkpoint(tmp_path / "killed" / "last.pt")["train_state"]
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 2, 6)  # saved mid-epoch
    resumed = run("--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr

    a = ckpt.load_checkpoint(tmp_path / "full" / "last.pt")
    b = ckpt.load_checkpoint(tmp_path / "killed" / "last.pt")
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 12
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    mom_a = a["train_state"]["optimizer"]["state"]
    mom_b = b["train_state"]["optimizer"]["state"]
    assert all(torch.equal(mom_a[i]["momentum_buffer"], mom_b[i]["momentum_buffer"]) for i in mom_a)
    assert a["metrics"] == b["metrics"]
    records = [yaml.safe_load(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    # update 7's record (written after the last checkpoint) was dropped on resume, not duplicated
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 13))
