"""Mixed precision on the CPU: bf16 and fp16 autocast + GradScaler on the scaler's own device.

GPUs are where users run amp; these tests run the same code paths on the CPU (tiny models), so
autocast, the scaler, skipped fp16 steps and the scaler's checkpoint state are exercised in CI.
"""

from __future__ import annotations

import pytest
import torch
from helpers.tinydata import tiny_config

from unidual import checkpoint as ckpt
from unidual.run import read_metrics
from unidual.train.config import load_config
from unidual.train.trainer import Trainer


def _cfg(tiny_sources, amp: str, **run):
    return load_config(
        data=tiny_config(
            tiny_sources,
            schedule={"epochs": 4, "kind": "cosine", "warmup_epochs": 0},
            run={"amp": amp, "log_every": 1, "eval_every": 0, **run},
        )
    )


def _weights(path) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(path)["model"]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_on_cpu_and_resumes_bit_exactly(tiny_sources, tmp_path, amp, capsys):
    straight = Trainer(_cfg(tiny_sources, amp), run_dir=tmp_path / "straight")
    assert straight.precision.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert (straight.precision.scaler is not None) == (amp == "fp16")
    straight.fit()
    assert f"run.amp={amp} on the CPU" in capsys.readouterr().err  # the one-line warning
    records, _ = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    losses = [r["loss"] for r in records if r["type"] == "train"]
    assert len(losses) == 16 and sum(losses[-4:]) < sum(losses[:4])  # it learns
    payload = ckpt.load_checkpoint(tmp_path / "straight" / "last.pt")
    scaler = payload["train_state"]["scaler"]
    if amp == "fp16":
        assert scaler["scale"] > 0 and "_growth_tracker" in scaler  # the GradScaler's state is saved
    else:
        assert scaler is None

    half = Trainer(_cfg(tiny_sources, amp, max_steps=6), run_dir=tmp_path / "split")
    half.fit()
    resumed = Trainer(_cfg(tiny_sources, amp), run_dir=tmp_path / "split", resume=True)
    if amp == "fp16":
        assert resumed.precision.scaler.state_dict() == half.precision.scaler.state_dict()
    resumed.fit()
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-exact on the CPU


def test_fp16_overflow_skips_the_update_instead_of_stopping(tiny_sources, tmp_path):
    trainer = Trainer(_cfg(tiny_sources, "fp16"), run_dir=tmp_path / "run")
    module = trainer.train_module
    original = module.forward
    calls = {"n": 0}

    def forward(sub, generator=None):
        loss, stats = original(sub, generator)
        calls["n"] += 1
        return (loss * float("inf") if calls["n"] == 3 else loss), stats  # one forward overflows

    module.forward = forward
    scale_before = trainer.precision.scaler.get_scale()
    result = trainer.fit()
    assert result.global_step == trainer.total_updates == 16  # the run finished, not "diverged"
    assert trainer.scheduler.last_epoch == 16  # the schedule stepped once per real update, not for the skipped one
    records, _ = read_metrics(tmp_path / "run" / "metrics.jsonl")
    train = [r for r in records if r["type"] == "train"]
    assert sum(r["amp_skipped"] for r in train) == 1  # counted and logged
    assert [r["step"] for r in train] == list(range(1, 17))  # no update number repeated or lost
    assert trainer.precision.scaler.get_scale() < scale_before  # the overflow lowered the scale


def test_fp16_loss_nan_at_every_scale_stops_as_diverged(tiny_sources, tmp_path, monkeypatch):
    from unidual.train import precision as P
    from unidual.train.errors import TrainingError

    monkeypatch.setattr(P, "MAX_CONSECUTIVE_SKIPS", 3)
    trainer = Trainer(_cfg(tiny_sources, "fp16"), run_dir=tmp_path / "run")
    original = trainer.train_module.forward
    trainer.train_module.forward = lambda sub, generator=None: (
        original(sub, generator)[0] * float("nan"),
        original(sub, generator)[1],
    )
    with pytest.raises(TrainingError, match="diverged"):
        trainer.fit()
