"""A training run's progress output in a log file: plain lines, no carriage-return frames."""

from __future__ import annotations

from helpers.tinydata import tiny_config

from unidual.train.config import load_config
from unidual.train.trainer import train


def test_training_log_has_no_bar_frames(tiny_sources, tmp_path, capsys):
    cfg = load_config(data=tiny_config(tiny_sources, run={"progress": True}))
    train(cfg, run_dir=tmp_path / "run")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert sum("update" in line for line in err.splitlines()) <= 4  # a line per epoch at most, not per update
