"""Parity with torchvision's R(2+1)D networks (random init, nothing downloaded).

r2plus1d_18, and R(2+1)D-34 built from torchvision's ``VideoResNet`` both in torchvision's
layout and as the ig65m-pytorch project builds it for its IG65M / Kinetics weights (Caffe2
mid-channels in layers 2-4's first block, BatchNorm eps 1e-3). Runs only where torchvision is
installed: `make parity` (its own environment).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from helpers.nets import randomise_bn

from unidual.models.surgery import deflate
from unidual.models.torchvision_keys import (
    from_torchvision,
    torchvision_architecture,
    unidual_from_torchvision,
)

tv_video = pytest.importorskip("torchvision.models.video", reason="torchvision not installed (run `make parity`)")

pytestmark = pytest.mark.parity


_randomise_bn = randomise_bn


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
        reference.state_dict(),
        heads={"imagenet": 10, "kinetics": 400},
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


# -- R(2+1)D-34: torchvision's layout and the ig65m-pytorch (Caffe2) one ---------------------
def _r2plus1d_34(num_classes: int, caffe2: bool) -> torch.nn.Module:
    """torchvision's VideoResNet with blocks (3, 4, 6, 3); ``caffe2``: ig65m-pytorch's r2plus1d_34."""
    from torchvision.models.video.resnet import (
        BasicBlock,
        Conv2Plus1D,
        R2Plus1dStem,
        VideoResNet,
    )

    model = VideoResNet(
        block=BasicBlock, conv_makers=[Conv2Plus1D] * 4, layers=[3, 4, 6, 3], stem=R2Plus1dStem, num_classes=num_classes
    )
    if caffe2:
        model.layer2[0].conv2[0] = Conv2Plus1D(128, 128, 288)
        model.layer3[0].conv2[0] = Conv2Plus1D(256, 256, 576)
        model.layer4[0].conv2[0] = Conv2Plus1D(512, 512, 1152)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.eps, m.momentum = 1e-3, 0.9
    return model


@pytest.mark.parametrize("caffe2", [True, False], ids=["ig65m-caffe2", "torchvision-layout"])
def test_r2plus1d_34_identical_outputs(caffe2):
    torch.manual_seed(1)
    reference = _randomise_bn(_r2plus1d_34(359, caffe2)).eval()
    state = reference.state_dict()
    assert torchvision_architecture(state) == (34, "vmz" if caffe2 else "torchvision")
    model = from_torchvision(state, frames=8).eval()
    assert model.spec["options"]["bn_eps"] == (1e-3 if caffe2 else 1e-5)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["kinetics"], reference(clip), rtol=1e-5, atol=1e-5)


def test_unidual_from_ig65m_34_video_pathway_matches():
    torch.manual_seed(2)
    reference = _randomise_bn(_r2plus1d_34(400, caffe2=True)).eval()
    model = unidual_from_torchvision(
        reference.state_dict(),
        heads={"imagenet": 10, "kinetics": 400},
        modalities={"imagenet": "image", "kinetics": "video"},
    ).eval()
    features = {}
    handle = reference.fc.register_forward_hook(lambda m, inp, out: features.setdefault("x", inp[0]))
    clip = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        reference(clip)
        ours = model.forward_features(clip, "video")
    handle.remove()
    torch.testing.assert_close(ours, features["x"], rtol=1e-5, atol=1e-5)


def test_benchmark_reference_34_is_ig65m_topology():
    """benchmarks/reference.py's r2plus1d_34 (the default suite's stand-in) has exactly these tensors."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "reference.py"
    spec = importlib.util.spec_from_file_location("unidual_benchmark_reference", path)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    ours = ref.r2plus1d_34(359, caffe2=True)
    theirs = _r2plus1d_34(359, caffe2=True)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    assert {m.eps for m in ours.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {1e-3}
