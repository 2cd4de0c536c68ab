"""Weights loading is bounded: a checkpoint whose zip members would inflate far past its size is refused
before anything is inflated (``load_checkpoint``, so eval/predict/export/visualize/resume, and convert)."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
import torch
from helpers.hostile import zip_bomb_checkpoint

from unidual import checkpoint as ckpt
from unidual.cli import main


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return zip_bomb_checkpoint(tmp_path_factory.mktemp("bomb") / "bomb.pth", inflated=256 << 20)


def test_bomb_is_refused_from_its_zip_directory_without_inflating(bomb, monkeypatch):
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached: the bomb was inflated"))
    start = time.perf_counter()
    with pytest.raises(ckpt.CheckpointError, match=r"bomb\.pth: its zip members declare 268435\d+ bytes"):
        ckpt.load_checkpoint(bomb)
    assert time.perf_counter() - start < 5  # generous: the check reads the zip directory only


@pytest.mark.parametrize("command", ["predict", "eval", "convert"])
def test_commands_refuse_a_bomb_in_one_line(bomb, command, tmp_path, capsys):
    argv = {
        "predict": ["predict", str(bomb), str(bomb)],
        "eval": ["eval", str(bomb)],
        "convert": ["convert", str(bomb), "--out", str(tmp_path / "c.pt")],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "possible decompression bomb" in err[0] and "Traceback" not in err[0]


def test_ordinary_checkpoints_and_state_dicts_still_load(tmp_path):
    """torch.save stores members uncompressed; a deflated zip of real weights is ~1:1 and passes too."""
    state = {"w": torch.randn(64, 64), "b": torch.zeros(64)}
    plain = tmp_path / "plain.pth"
    torch.save(state, plain)
    ckpt.check_inflation(plain)
    deflated = tmp_path / "deflated.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    ckpt.check_inflation(deflated)
    assert torch.equal(torch.load(deflated, weights_only=True)["b"], state["b"])
    legacy = io.BytesIO()
    torch.save(state, legacy, _use_new_zipfile_serialization=False)  # pickle format: nothing to inflate
    (tmp_path / "legacy.pth").write_bytes(legacy.getvalue())
    ckpt.check_inflation(tmp_path / "legacy.pth")
