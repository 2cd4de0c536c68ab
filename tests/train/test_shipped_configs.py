"""Every shipped config validates (no training), and the paper configs carry the paper's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from unidual.models import list_models
from unidual.train.config import load_config
from unidual.train.regimes import get_regime
from unidual.train.schedule import scaled_lr

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL = sorted(p for p in CONFIGS.rglob("*.yaml") if not p.name.endswith("study.yaml"))  # study files: tests/study
TABLE1 = [
    "r2d",
    "r2plus1d",
    "r2d_finetuned",
    "r2plus1d_finetuned",
    "r2d_multitask",
    "r2plus1d_multitask",
    "r2d_lstm_multitask",
    "unidual",
    "unidual_aux",
]


def test_configs_exist():
    assert len(ALL) >= 18  # paper configs, the demo, the CPU studies' recipes (their rows are derived)


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_config_validates(path):
    cfg = load_config(path)  # also validates every source through unidual.data SourceSpec
    assert cfg.model.name in list_models()


def test_every_table1_model_has_a_paper_config():  # the CPU studies derive theirs (tests/study/test_rows.py)
    for name in TABLE1:
        cfg = load_config(CONFIGS / "paper" / f"{name}.yaml")
        assert cfg.run.name == name
        joint = len(cfg.sources) == 2
        assert joint == (not get_regime(cfg.regime).one_source)


def test_paper_34_layer_recipe():
    for name in TABLE1:
        cfg = load_config(CONFIGS / "paper" / f"{name}.yaml")
        assert (cfg.model.depth, cfg.optim.lr, cfg.optim.batch_size, cfg.optim.reference_batch) == (34, 0.01, 16, 16)
        assert cfg.optim.nesterov and scaled_lr(cfg.optim.lr, 16 * 64, cfg.optim.reference_batch) == pytest.approx(0.64)
        s = cfg.schedule
        assert (s.epochs, s.warmup_epochs, s.kind, s.step_epochs, s.gamma) == (45, 10, "step", 10, 0.1)
        assert cfg.data.epoch_size == (2_000_000 if len(cfg.sources) == 2 else 1_000_000)
        for src in cfg.sources:
            assert src.transform.protocol == "A"
            if src.modality == "video":
                assert src.clip.frames == 8 and src.clip.num_clips == 10


def test_paper_152_layer_recipe():
    cfg = load_config(CONFIGS / "paper" / "unidual_aux-152.yaml")
    assert (cfg.model.depth, cfg.model.frames, cfg.model.options) == (152, 16, {"maxpool": True})
    assert (cfg.optim.lr, cfg.optim.batch_size, cfg.optim.reference_batch) == (0.005, 8, 8)
    assert scaled_lr(cfg.optim.lr, 8 * 64, cfg.optim.reference_batch) == pytest.approx(0.32)
    assert (cfg.schedule.epochs, cfg.schedule.warmup_epochs, cfg.schedule.kind) == (45, 10, "cosine")
    video = next(s for s in cfg.sources if s.modality == "video")
    assert (video.clip.frames, video.clip.stride) == (16, 4) and video.transform.protocol == "B"


def test_finetune_configs_point_at_their_pretraining_runs():
    a = load_config(CONFIGS / "paper" / "r2d_finetuned.yaml").finetune
    b = load_config(CONFIGS / "paper" / "r2plus1d_finetuned.yaml").finetune
    assert (a.checkpoint, a.convert) == ("runs/paper/r2plus1d", "deflate")
    assert (b.checkpoint, b.convert) == ("runs/paper/r2d", "inflate")
