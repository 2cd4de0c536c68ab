"""run.channels_last: the trainer applies it and trains to the same weights (run.compile: test_compile.py)."""

from __future__ import annotations

import pytest
import torch
from helpers.tinydata import tiny_config

from unidual.models import is_channels_last
from unidual.train.config import ConfigError, load_config
from unidual.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _two_threads():
    """With one thread PyTorch runs small point-wise conv batches on a non-oneDNN kernel in one layout
    and oneDNN in the other; the comparisons below are about the layout, so run both on oneDNN."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    yield
    torch.set_num_threads(threads)


def _fit(tiny_sources, tmp_path, name: str, **run) -> tuple[Trainer, dict[str, torch.Tensor]]:
    cfg = load_config(
        data=tiny_config(tiny_sources, run={"max_steps": 1, "eval_every": 0, **run}, schedule={"epochs": 1})
    )
    trainer = Trainer(cfg, run_dir=tmp_path / name)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    return trainer, start


def test_channels_last_is_the_default_and_trains_to_the_same_weights(tiny_sources, tmp_path):
    """One update on the same data: same weights to float rounding. (Over several updates on the
    tiny one-colour images, train-mode BatchNorm amplifies rounding differences -- between thread
    counts too -- so a longer comparison would test chaos, not the layout.)"""
    fast, start = _fit(tiny_sources, tmp_path, "cl")
    plain, _ = _fit(tiny_sources, tmp_path, "plain", channels_last=False)
    assert is_channels_last(fast.model) and not is_channels_last(plain.model)
    momentum = [s["momentum_buffer"] for s in fast.optimizer.state.values() if s["momentum_buffer"].dim() == 5]
    assert momentum and all(m.is_contiguous(memory_format=torch.channels_last_3d) for m in momentum)
    assert fast.global_step == plain.global_step == 1
    a, b = fast.model.state_dict(), plain.model.state_dict()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6, msg=key)
    stem = "backbone.stem.conv.spatial.weight"
    assert not torch.allclose(a[stem], start[stem], rtol=1e-3, atol=1e-5)  # the update did move the weights


@pytest.mark.parametrize("key", ["channels_last", "compile"])
def test_switches_must_be_booleans(tiny_sources, key):
    with pytest.raises(ConfigError, match=f"run.{key}"):
        load_config(data=tiny_config(tiny_sources, run={key: "fast"}))
