"""Mixup / CutMix inside one source's sub-batch: soft targets, one λ and one box for every frame."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unidual.data.mixup import Mixer, mix_sources, mix_targets


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clips(n: int = 6, t: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3, t, 16, 20), torch.tensor([0, 1, 2, 3, 4, 0][:n])


def test_mixup_uses_one_lambda_for_every_frame_and_targets_sum_to_one():
    x, y = clips()
    for seed in range(5):
        out = Mixer(mixup=1.0)(x, y, 5, gen(seed))
        assert out.box is None and 0 < out.lam < 1
        assert torch.allclose(out.input, out.lam * x + (1 - out.lam) * x.flip(0), atol=1e-6)  # every frame, one λ
        assert torch.allclose(out.target.sum(1), torch.ones(6))
        expected = out.lam * F.one_hot(y, 5) + (1 - out.lam) * F.one_hot(y.flip(0), 5)
        assert torch.allclose(out.target, expected.float())


def test_cutmix_pastes_one_box_into_every_frame_and_corrects_lambda_to_its_area():
    x, y = clips()
    seen_boxes = set()
    for seed in range(8):
        out = Mixer(cutmix=1.0)(x, y, 5, gen(seed))
        top, bottom, left, right = out.box
        seen_boxes.add(out.box)
        inside = torch.zeros(16, 20, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        for t in range(x.shape[2]):  # the same box in every frame
            frame, mirror, mixed = x[:, :, t], x.flip(0)[:, :, t], out.input[:, :, t]
            assert torch.equal(mixed[..., inside], mirror[..., inside])
            assert torch.equal(mixed[..., ~inside], frame[..., ~inside])
        assert out.lam == pytest.approx(1 - inside.sum().item() / (16 * 20))
        assert torch.allclose(out.target.sum(1), torch.ones(6))
        assert torch.allclose(out.target, mix_targets(y, 5, out.lam))
    assert len(seen_boxes) > 1


def test_images_mix_too_and_both_switches_use_both_methods():
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 1, 2])
    kinds = {Mixer(mixup=0.8, cutmix=1.0)(x, y, 3, gen(s)).box is None for s in range(20)}
    assert kinds == {True, False}  # switch_prob 0.5: mixup and cutmix both drawn


def test_mix_prob_zero_or_alphas_zero_leave_the_batch_alone():
    x, y = clips()
    for mixer in (Mixer(mixup=1.0, mix_prob=0.0), Mixer()):
        out = mixer(x, y, 5, gen())
        assert out.lam == 1.0 and torch.equal(out.input, x)
        assert torch.equal(out.target, F.one_hot(y, 5).float())
    kept = sum(Mixer(mixup=1.0, mix_prob=0.5)(x, y, 5, gen(s)).lam == 1.0 for s in range(40))
    assert 8 <= kept <= 32  # about half the sub-batches are left unmixed


def test_draws_are_deterministic_for_a_generator_state():
    x, y = clips()
    a = Mixer(mixup=0.8, cutmix=1.0)(x, y, 5, gen(7))
    b = Mixer(mixup=0.8, cutmix=1.0)(x, y, 5, gen(7))
    assert a.lam == b.lam and a.box == b.box and torch.equal(a.input, b.input)


def test_composes_with_label_smoothing_as_timms_mixup_target():
    """CE(logits, mixed target, label_smoothing=ε) == soft CE against timm's smoothed mixup target."""
    x, y = clips()
    out = Mixer(mixup=1.0)(x, y, 5, gen(3))
    logits = torch.randn(6, 5)
    eps, classes = 0.1, 5
    off, on = eps / classes, 1 - eps + eps / classes  # timm's mixup_target: smooth each one-hot, then mix
    y1 = F.one_hot(y, classes).float() * (on - off) + off
    y2 = F.one_hot(y.flip(0), classes).float() * (on - off) + off
    timm_target = y1 * out.lam + y2 * (1 - out.lam)
    ours = F.cross_entropy(logits, out.target, label_smoothing=eps)
    reference = torch.sum(-timm_target * F.log_softmax(logits, -1), -1).mean()
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)


def test_mix_sources_mixes_only_the_sources_with_a_mixer():
    sub = {
        "img": {"input": torch.randn(4, 3, 8, 8), "label": torch.tensor([0, 1, 2, 0])},
        "vid": dict(zip(("input", "label"), clips())),
    }
    out = mix_sources(sub, {"img": Mixer(mixup=1.0)}, {"img": 3, "vid": 5}, gen())
    assert "target" in out["img"] and "target" not in out["vid"]
    assert not torch.equal(out["img"]["input"], sub["img"]["input"])
    assert out["vid"]["input"] is sub["vid"]["input"]


def test_bad_settings_rejected():
    with pytest.raises(ValueError, match="alphas"):
        Mixer(mixup=-1)
    with pytest.raises(ValueError, match="mix_prob"):
        Mixer(mixup=1, mix_prob=2)
