"""Precise BN: running statistics recomputed per pathway from the inputs each pathway sees at inference."""

from __future__ import annotations

import torch
from helpers.tinydata import tiny_config

from unidual.models import create_model
from unidual.train import validation as V
from unidual.train.config import load_config
from unidual.train.precise_bn import recompute_bn_statistics
from unidual.train.trainer import Trainer

MODS = {"img": "image", "vid": "video"}


def _model(**kw):
    return create_model(
        "unidual_aux",
        depth=10,
        width=0.125,
        heads={"img": 2, "vid": 2},
        modalities=MODS,
        frames=2,
        channels_last=False,
        **kw,
    )


def test_statistics_become_the_exact_mean_of_each_pathways_own_batches():
    torch.manual_seed(0)
    model = _model().eval()  # statistics per pathway: the default
    stem_norm = model.backbone.stem.conv.norm  # after the shared 1x7x7 conv
    batches = [
        {
            "img": {"input": torch.randn(4, 3, 32, 32) * 2 + 1, "label": torch.zeros(4, dtype=torch.long)},
            "vid": {"input": torch.randn(3, 3, 2, 32, 32) - 1, "label": torch.zeros(3, dtype=torch.long)},
        }
        for _ in range(3)
    ]
    params = [p.clone() for p in model.parameters()]
    assert recompute_bn_statistics(model, batches) == 6
    assert not model.training and all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    # expected: mean over the three batches of each pathway's batch mean at that BN
    spatial = model.backbone.stem.conv.spatial
    img_means = torch.stack([spatial(b["img"]["input"]).mean((0, 2, 3)) for b in batches]).mean(0)
    vid_means = torch.stack([spatial(b["vid"]["input"]).mean((0, 2, 3, 4)) for b in batches]).mean(0)
    assert torch.allclose(stem_norm["image"].running_mean, img_means, atol=1e-5)
    assert torch.allclose(stem_norm["video"].running_mean, vid_means, atol=1e-5)
    assert stem_norm["image"].momentum == 0.1  # restored


def test_shared_statistics_average_both_modalities_and_empty_input_keeps_old_stats():
    torch.manual_seed(0)
    model = _model(pathway_bn_stats=False)
    norm = model.backbone.stem.conv.norm
    before = norm.running_mean.clone()
    assert recompute_bn_statistics(model, []) == 0 and torch.equal(norm.running_mean, before)
    img = {"input": torch.randn(2, 3, 32, 32) + 3, "label": torch.zeros(2, dtype=torch.long)}
    vid = {"input": torch.randn(2, 3, 2, 32, 32) - 3, "label": torch.zeros(2, dtype=torch.long)}
    recompute_bn_statistics(model, [{"img": img, "vid": vid}])
    spatial = model.backbone.stem.conv.spatial
    expected = (spatial(img["input"]).mean((0, 2, 3)) + spatial(vid["input"]).mean((0, 2, 3, 4))) / 2
    assert torch.allclose(norm.running_mean, expected, atol=1e-5)


def test_trainer_runs_precise_bn_before_validation(tiny_sources, tmp_path, monkeypatch):
    raw = tiny_config(tiny_sources, data={"precise_bn_batches": 2}, schedule={"epochs": 1})
    raw["model"]["options"] = {"pathway_bn_stats": True}
    cfg = load_config(data=raw)
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    calls = []
    real = V.validate

    def spy(model, *args, **kwargs):
        norm = model.backbone.stem.conv.norm
        calls.append(int(norm["video"].num_batches_tracked))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(V, "validate", spy)  # what the trainer's validation calls
    trainer.fit()
    assert calls == [2]  # cumulative average over the 2 precise-BN batches, not the training updates' count
