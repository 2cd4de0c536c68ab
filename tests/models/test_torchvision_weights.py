"""Published R(2+1)D weights: ``from_torchvision`` reads depth, mid-channel layout and BN eps.

The sources are state dicts of benchmarks/reference.py, a plain-PyTorch copy of torchvision's
``VideoResNet`` topology (torchvision itself is only in the parity environment, tests/parity):
R(2+1)D-34 as the ig65m-pytorch project builds it (Caffe2 mid-channels in layers 2-4's first
block, BatchNorm eps 1e-3) and in torchvision's own layout.
"""

from __future__ import annotations

import pytest
import torch
from helpers.nets import load_reference, randomise_bn

from unidual.models import create_model
from unidual.models.surgery import architecture_mismatch, deflate
from unidual.models.torchvision_keys import (
    from_torchvision,
    torchvision_architecture,
    unidual_from_torchvision,
)

reference = load_reference()


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    return randomise_bn(model).eval()


@pytest.fixture(scope="module")
def ig65m_34() -> torch.nn.Module:
    torch.manual_seed(0)
    return _randomised(reference.r2plus1d_34(num_classes=7, caffe2=True))


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


def test_reference_34_has_the_caffe2_mid_channels(ig65m_34):
    # ig65m-pytorch: Conv2Plus1D(128, 128, 288) etc. replace layers 2-4's first block's second conv
    assert [getattr(ig65m_34, f"layer{i}")[0].conv2[0][0].out_channels for i in (2, 3, 4)] == [288, 576, 1152]
    assert [getattr(ig65m_34, f"layer{i}")[0].conv1[0][0].out_channels for i in (2, 3, 4)] == [230, 460, 921]
    assert all(m.eps == 1e-3 for m in ig65m_34.modules() if isinstance(m, torch.nn.BatchNorm3d))


def test_ig65m_34_loads_strictly_with_identical_outputs(ig65m_34, clip):
    state = ig65m_34.state_dict()
    assert torchvision_architecture(state) == (34, "vmz")
    model = from_torchvision(state, head="kinetics", frames=8).eval()
    spec = model.spec
    assert (spec["depth"], spec["options"]["layout"], spec["options"]["bn_eps"]) == (34, "vmz", 1e-3)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ig65m_34.parameters())
    with torch.no_grad():
        expected = ig65m_34(clip)
        torch.testing.assert_close(model(clip)["kinetics"], expected, rtol=1e-5, atol=1e-5)
        # eps is part of the function: loading with PyTorch's default eps changes the outputs
        wrong = from_torchvision(state, bn_eps=1e-5).eval()(clip)["kinetics"]
    assert (wrong - expected).abs().max() > 1e-3


def test_torchvision_layout_34_loads_with_default_eps(clip):
    torch.manual_seed(2)
    net = _randomised(reference.r2plus1d_34(num_classes=5, caffe2=False))
    state = net.state_dict()
    assert torchvision_architecture(state) == (34, "torchvision")
    model = from_torchvision(state).eval()
    assert model.spec["options"]["bn_eps"] == 1e-5
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["kinetics"], net(clip), rtol=1e-5, atol=1e-5)


def test_unidual_from_ig65m_34(ig65m_34, clip):
    model = unidual_from_torchvision(
        ig65m_34.state_dict(),
        heads={"imagenet": 10, "kinetics": 400},
        modalities={"imagenet": "image", "kinetics": "video"},
    ).eval()
    assert (model.spec["depth"], model.spec["options"]["layout"], model.spec["options"]["bn_eps"]) == (34, "vmz", 1e-3)
    features = {}
    handle = ig65m_34.fc.register_forward_hook(lambda m, inp, out: features.setdefault("x", inp[0]))
    with torch.no_grad():
        ig65m_34(clip)
        ours = model.forward_features(clip, "video")
    handle.remove()
    torch.testing.assert_close(ours, features["x"], rtol=1e-5, atol=1e-5)
    temporal = ig65m_34.layer3[0].conv2[0][3].weight
    torch.testing.assert_close(model.backbone.layer3[0].conv2.pointwise.image.weight, deflate(temporal))


def test_missing_bn_counters_are_tolerated_anything_else_is_strict():
    torch.manual_seed(3)
    state = reference.R2Plus1d18(num_classes=3).state_dict()
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert from_torchvision(no_counters).spec["depth"] == 18
    with pytest.raises(ValueError, match="layer1.0.conv1.0.0.weight"):
        from_torchvision({k: v for k, v in state.items() if k != "layer1.0.conv1.0.0.weight"})
    extra = {**state, "layer1.0.conv1.7.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="layer1.0.conv1.7.weight"):
        from_torchvision(extra)


def test_unknown_architectures_are_named():
    torch.manual_seed(4)
    state = reference.R2Plus1d18(num_classes=3).state_dict()
    with pytest.raises(ValueError, match="no 'fc.weight'"):
        from_torchvision({k: v for k, v in state.items() if k != "fc.weight"})
    three = {k: v for k, v in state.items() if not k.startswith("layer4.1.")}
    with pytest.raises(ValueError, match=r"blocks per stage \(2, 2, 2, 1\)"):
        from_torchvision(three)
    odd = dict(state)
    odd["layer2.0.conv2.0.0.weight"] = torch.zeros(100, 128, 1, 3, 3)
    with pytest.raises(ValueError, match="100 mid-channels"):
        from_torchvision(odd)


def test_architecture_mismatch_names_what_no_tensor_records():
    a = create_model("r2plus1d", depth=10, width=0.25, heads={"k": 2}, bn_eps=1e-3).spec
    b = create_model("r2d", depth=10, width=0.25, heads={"k": 2}).spec
    assert architecture_mismatch(a, b) == ["model.options.bn_eps: source 0.001, model 1e-05"]
    c = create_model("r2d", depth=18, width=0.25, heads={"k": 2}, bn_eps=1e-3, maxpool=True).spec
    assert architecture_mismatch(a, c) == [
        "depth: source 10, model 18",
        "model.options.maxpool: source False, model True",
    ]
    old = {**b, "options": {k: v for k, v in b["options"].items() if k != "bn_eps"}}  # checkpoints before bn_eps
    assert architecture_mismatch(old, b) == []


def test_bn_eps_option_is_in_the_spec_and_rebuilt():
    from unidual.checkpoint import build_model

    model = create_model(
        "unidual", depth=10, width=0.25, heads={"i": 2, "v": 3}, modalities={"i": "image", "v": "video"}, bn_eps=1e-3
    )
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)}
    assert eps == {1e-3}
    rebuilt = build_model(model.spec)
    assert {m.eps for m in rebuilt.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {1e-3}
    with pytest.raises(ValueError, match="bn_eps"):
        create_model("r2d", depth=10, heads={"k": 2}, bn_eps=0)
