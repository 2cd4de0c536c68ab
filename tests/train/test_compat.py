"""Features that need a newer torch than pyproject's floor refuse in one line (unidual/compat.py)."""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers.tinydata import tiny_config

from unidual.cli import main as cli
from unidual.compat import TorchVersionError, require_torch, torch_version
from unidual.train import compiled


@pytest.mark.parametrize(
    "text, expected",
    [("2.7.0+cu126", (2, 7, 0)), ("2.8.0a0+git1234", (2, 8, 0)), ("2.9.0.dev20250801", (2, 9, 0)), ("3.1", (3, 1, 0))],
)
def test_torch_version_reads_release_nightly_and_local_builds(text, expected):
    assert torch_version(text) == expected


def test_require_torch_passes_here_and_refuses_an_older_torch(monkeypatch):
    require_torch("2.1", "the core")  # this environment's torch
    monkeypatch.setattr(torch, "__version__", "2.6.0+cu124")
    require_torch("2.6", "x")  # equal is enough
    with pytest.raises(TorchVersionError, match=r"run.compile needs torch >= 2.7, this is torch 2.6.0\+cu124"):
        require_torch("2.7", "run.compile")


def test_run_compile_is_refused_where_it_starts(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    with pytest.raises(TorchVersionError, match="run.compile"):
        compiled.CompiledModel(torch.nn.Linear(2, 2))
    with pytest.raises(TorchVersionError, match="run.compile"):
        compiled.enable_compile_caches()


def test_unidual_train_run_compile_on_old_torch_is_one_line(tiny_sources, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_sources, run={"compile": True, "max_steps": 1})))
    assert cli(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == "unidual train: run.compile needs torch >= 2.7, this is torch 2.6.0; upgrade torch or turn run.compile off"
    )
