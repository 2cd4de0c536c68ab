"""Parity with torchvision's r2plus1d_18 (random init, nothing downloaded).

Runs only where torchvision is installed: `make parity` (its own environment).
"""
from __future__ import annotations

import pytest
import torch

from unidual.models.surgery import deflate, from_torchvision, unidual_from_torchvision

tv_video = pytest.importorskip("torchvision.models.video", reason="torchvision not installed (run `make parity`)")

pytestmark = pytest.mark.parity


def _randomise_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics, so a wrong BN mapping cannot hide behind identity BNs."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    torch.manual_seed(0)
    return _randomise_bn(tv_video.r2plus1d_18(weights=None)).eval()


def test_parameter_count(reference):
    assert sum(p.numel() for p in reference.parameters()) == 31_505_325
    ours = from_torchvision(reference.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == 31_505_325


def test_from_torchvision_identical_outputs(reference):
    model = from_torchvision(reference.state_dict(), head="kinetics").eval()
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        expected = reference(clip)
        got = model(clip)["kinetics"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # same tensors, key by key (strict load already guarantees every key was mapped)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())


def test_from_torchvision_short_clip_and_image(reference):
    model = from_torchvision(reference.state_dict(), frames=4).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(image.unsqueeze(2).expand(-1, -1, 4, -1, -1).contiguous())
        torch.testing.assert_close(model(image)["kinetics"], expected, rtol=1e-5, atol=1e-5)
        one = torch.randn(1, 3, 1, 64, 64)
        torch.testing.assert_close(model(one)["kinetics"], reference(one), rtol=1e-5, atol=1e-5)


def test_unidual_video_pathway_matches_torchvision(reference):
    model = unidual_from_torchvision(
        reference.state_dict(), heads={"imagenet": 10, "kinetics": 400},
        modalities={"imagenet": "image", "kinetics": "video"},
    ).eval()
    features = {}
    handle = reference.fc.register_forward_hook(lambda m, inp, out: features.setdefault("x", inp[0]))
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        reference(clip)
        ours = model.forward_features(clip, "video")
    handle.remove()
    torch.testing.assert_close(ours, features["x"], rtol=1e-5, atol=1e-5)
    # image 1x1 filters are the deflated temporal filters
    tv_temporal = reference.layer4[1].conv2[0][3].weight
    torch.testing.assert_close(model.backbone.layer4[1].conv2.pointwise.image.weight, deflate(tv_temporal))
    with torch.no_grad():
        assert set(model(torch.randn(1, 3, 64, 64))) == {"imagenet", "kinetics_aux"}
