"""Shapes, head sets, gradient routing and errors of the Table-1 models (slim, tiny inputs)."""

from __future__ import annotations

import pytest
import torch

import unidual
from unidual.checkpoint import build_model
from unidual.models import create_model, list_models, pointwise_layers

HEADS = {"cifar": 10, "motion": 5}
MODALITIES = {"cifar": "image", "motion": "video"}
NAMES = ["r2d", "r2plus1d", "r2d_multitask", "r2plus1d_multitask", "r2d_lstm_multitask", "unidual", "unidual_aux"]


def make(name: str, depth: int = 10, **kw) -> torch.nn.Module:
    return create_model(name, depth=depth, width=0.125, heads=HEADS, modalities=MODALITIES, frames=3, **kw)


def expected_heads(name: str, x_dim: int) -> set[str]:
    if name == "unidual":
        return {"cifar"} if x_dim == 4 else {"motion"}
    if name == "unidual_aux":
        return {"cifar", "motion_aux"} if x_dim == 4 else {"motion", "cifar_aux"}
    return set(HEADS)


def test_registry_lists_the_seven_names():
    assert list_models() == NAMES
    assert unidual.list_models() == NAMES
    assert type(unidual.create_model("r2d", depth=10, width=0.125, heads={"a": 2})).__name__ == "ImageVideoNet"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("frames", [1, 2, 3, 4])
def test_shapes_and_heads_depth10(name, frames):
    model = make(name).eval()
    with torch.no_grad():
        for x in (torch.randn(2, 3, 32, 32), torch.randn(2, 3, frames, 32, 32)):
            out = model(x)
            assert set(out) == expected_heads(name, x.dim())
            for head, logits in out.items():
                assert logits.shape == (2, HEADS[head.removesuffix("_aux")])
                assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name,depth", [("unidual_aux", 18), ("r2plus1d", 26), ("unidual", 50), ("r2d", 50)])
def test_other_depths(name, depth):
    model = make(name, depth=depth).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 2, 32, 32))
        feats = model.forward_features(torch.randn(1, 3, 32, 32))
    assert feats.shape == (1, model.num_features)
    assert model.num_features == (512 if depth < 50 else 2048) * 0.125
    assert all(v.shape[0] == 1 for v in out.values())


def test_forced_pathways_and_head_for():
    model = make("unidual_aux").eval()
    img, clip = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        assert set(model(img, pathway="video")) == {"motion", "cifar_aux"}
        assert set(model(clip, pathway="image")) == {"cifar", "motion_aux"}
        # forcing the default pathway changes nothing
        torch.testing.assert_close(model(img)["cifar"], model(img, pathway="image")["cifar"])
        # an image forced on the video pathway is the same as its static clip
        static = img.unsqueeze(2).expand(-1, -1, 3, -1, -1)
        torch.testing.assert_close(model(img, pathway="video")["motion"], model(static)["motion"])
        # a clip on the image pathway: frames independently, mean over time
        per_frame = torch.stack([model.forward_features(clip[:, :, i], "image") for i in range(3)], 1).mean(1)
        torch.testing.assert_close(model.forward_features(clip, "image"), per_frame, rtol=1e-4, atol=1e-5)
    assert model.head_for("motion", "image") == "motion_aux"
    assert model.head_for("motion", "video") == "motion"
    assert model.head_for("cifar", "video") == "cifar_aux"
    assert model.pathways == ("image", "video")
    assert make("r2plus1d").head_for("cifar", "image") == "cifar"
    assert make("r2plus1d").pathways == ("video",)
    assert make("r2d").pathways == ("image",)
    with pytest.raises(KeyError, match="no head"):
        make("unidual").head_for("motion", "image")
    with pytest.raises(ValueError, match="no 'image' pathway"):
        make("r2plus1d")(img, pathway="image")


def test_r2d_on_clip_is_mean_of_frames():
    model = make("r2d").eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        per_frame = torch.stack([model(clip[:, :, i])["cifar"] for i in range(4)], 0).mean(0)
        torch.testing.assert_close(model(clip)["cifar"], per_frame, rtol=1e-4, atol=1e-5)


def test_lstm_has_512_hidden_and_uses_order():
    model = make("r2d_lstm_multitask").eval()
    assert model.temporal.lstm.hidden_size == 512 and model.num_features == 512
    clip = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():
        a, b = model(clip)["motion"], model(clip.flip(2))["motion"]
    assert not torch.allclose(a, b)  # an LSTM is order-sensitive, a mean would not be


def test_image_pathway_shares_parameter_tensors():
    model = make("unidual")
    conv = model.backbone.layer1[0].conv1
    keys = model.state_dict().keys()
    for k in (
        "backbone.layer1.0.conv1.spatial.weight",
        "backbone.layer1.0.conv1.pointwise.video.weight",
        "backbone.layer1.0.conv1.pointwise.image.weight",
        "backbone.layer1.0.bn1.image.weight",
    ):
        assert k in keys
    assert conv.pointwise.video.weight.shape[2] == 3 and conv.pointwise.image.weight.shape[2:] == (1, 1, 1)
    # one spatial parameter, used by both pathways: the image pathway sees an in-place change
    x = torch.randn(1, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        before = model(x)["cifar"].clone()
        conv.spatial.weight.mul_(2)
        assert not torch.allclose(before, model(x)["cifar"])


def test_channels_last_inputs():
    model = make("unidual").eval()
    img = torch.randn(2, 3, 32, 32)
    clip = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(img.to(memory_format=torch.channels_last))["cifar"], model(img)["cifar"])
        torch.testing.assert_close(
            model(clip.to(memory_format=torch.channels_last_3d))["motion"], model(clip)["motion"], rtol=1e-4, atol=1e-5
        )
        r2d = make("r2d").eval()
        torch.testing.assert_close(
            r2d(clip.to(memory_format=torch.channels_last_3d))["cifar"], r2d(clip)["cifar"], rtol=1e-4, atol=1e-5
        )


# -- gradient routing ------------------------------------------------------
def _grads(model, x, pathway=None):
    model.zero_grad(set_to_none=False)
    out = model(x, pathway=pathway)
    sum(v.sum() for v in out.values()).backward()
    video = [m.weight.grad.abs().sum().item() for m in pointwise_layers(model, "video")]
    image = [m.weight.grad.abs().sum().item() for m in pointwise_layers(model, "image")]
    spatial = [b.last_conv().spatial.weight.grad.abs().sum().item() for b in model.backbone.blocks()]
    return video, image, spatial


@pytest.mark.parametrize("depth", [18, 50])
def test_gradient_routing_unidual(depth):
    model = make("unidual", depth=depth)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    video, image, spatial = _grads(model, torch.randn(2, 3, 32, 32))
    assert all(g == 0 for g in video) and all(g > 0 for g in image) and all(g > 0 for g in spatial)
    video, image, spatial = _grads(model, torch.randn(2, 3, 2, 32, 32))
    assert all(g > 0 for g in video) and all(g == 0 for g in image) and all(g > 0 for g in spatial)
    # every 1×1 / t×1×1 filter of every layer (not only the last conv of each block)
    model.zero_grad(set_to_none=False)
    sum(v.sum() for v in model(torch.randn(2, 3, 32, 32)).values()).backward()
    for name, p in model.named_parameters():
        if ".pointwise.video." in name:
            assert p.grad.abs().sum() == 0, name


def test_gradient_routing_unidual_aux_reaches_all_filters():
    model = make("unidual_aux", depth=18)
    model.zero_grad(set_to_none=True)
    img, clip = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 2, 32, 32)
    # the paper's four losses: images on both pathways, clips on both pathways
    loss = sum(v.sum() for v in model(img).values()) + sum(v.sum() for v in model(clip).values())
    loss = loss + model(img, pathway="video")["cifar_aux"].sum() + model(clip, pathway="image")["motion_aux"].sum()
    loss.backward()
    for name, p in model.backbone.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # images alone already reach the video filters, through the auxiliary head on inflated images
    model.zero_grad(set_to_none=True)
    model(img, pathway="video")["cifar_aux"].sum().backward()
    assert all(m.weight.grad.abs().sum() > 0 for m in pointwise_layers(model, "video"))
    # and clips alone reach the 1×1 image filters, through the auxiliary head on their frames
    model.zero_grad(set_to_none=True)
    model(clip, pathway="image")["motion_aux"].sum().backward()
    assert all(m.weight.grad.abs().sum() > 0 for m in pointwise_layers(model, "image"))
    assert all(m.weight.grad is None for m in pointwise_layers(model, "video"))


def test_real_size_unidual_152_shapes_on_meta():
    with torch.device("meta"):
        model = create_model(
            "unidual_aux",
            depth=152,
            heads={"imagenet": 1000, "kinetics": 400},
            modalities={"imagenet": "image", "kinetics": "video"},
            frames=16,
            maxpool=True,
        )
        out_clip = model(torch.empty(1, 3, 16, 224, 224))
        out_img = model(torch.empty(1, 3, 224, 224))
    assert {k: tuple(v.shape) for k, v in out_clip.items()} == {"kinetics": (1, 400), "imagenet_aux": (1, 1000)}
    assert {k: tuple(v.shape) for k, v in out_img.items()} == {"imagenet": (1, 1000), "kinetics_aux": (1, 400)}
    assert model.num_features == 2048
    assert len(pointwise_layers(model, "image")) == 3 + 8 + 36 + 3


def test_deploy_drops_aux_heads_and_spec_rebuilds():
    model = make("unidual_aux")
    sd_full = model.state_dict()
    rebuilt = build_model(model.spec)
    rebuilt.load_state_dict(sd_full)  # strict
    model.deploy()
    assert set(model.heads) == {"cifar", "motion"}
    assert not any("_aux" in k for k in model.state_dict())
    again = build_model(model.spec)
    again.load_state_dict(model.state_dict())  # strict: the deployed spec has no aux heads
    assert model.head_for("motion", "video") == "motion"


@pytest.mark.parametrize("name", NAMES)
def test_spec_roundtrip(name):
    model = make(name, maxpool=True)
    spec = model.spec
    assert set(spec) == {"name", "depth", "width", "heads", "options"}
    assert spec["options"]["frames"] == 3 and spec["options"]["maxpool"] is True
    clone = build_model(spec)
    clone.load_state_dict(model.state_dict())


def test_per_pathway_bn_option():
    shared = make("unidual", pathway_bn_stats=False)
    per = make("unidual", per_pathway_bn=True)
    assert "backbone.layer1.0.conv1.norm.weight" in shared.state_dict()
    assert per.backbone.layer1[0].conv1.norm["video"].weight is not per.backbone.layer1[0].conv1.norm["image"].weight
    assert "backbone.layer1.0.conv1.norm.video.weight" in per.state_dict()
    assert "backbone.stem.conv.norm.image.weight" in per.state_dict()
    per.eval()
    with torch.no_grad():
        assert set(per(torch.randn(1, 3, 32, 32))) == {"cifar"}


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(name="resnet"), ValueError, "unknown model 'resnet'"),
        (dict(name="r2d", depth=20), ValueError, "unsupported depth 20"),
        (dict(name="r2d", heads={}), ValueError, "non-empty dict"),
        (dict(name="r2d", heads={"a": 0}), ValueError, "positive integer"),
        (dict(name="r2d", heads=[10]), ValueError, "non-empty dict"),
        (dict(name="unidual_aux", heads={"a_aux": 3}, modalities={"a_aux": "image"}), ValueError, "_aux"),
        (dict(name="unidual", modalities=None), ValueError, "modalities"),
        (dict(name="unidual", modalities={"cifar": "image"}), ValueError, "motion"),
        (dict(name="unidual", modalities={"cifar": "audio", "motion": "video"}), ValueError, "'image' or 'video'"),
        (dict(name="r2d", colour=True), TypeError, "unknown option"),
        (dict(name="r2d", frames=0), ValueError, "frames"),
        (dict(name="r2d", width=0), ValueError, "width"),
    ],
)
def test_clear_errors(kwargs, error, match):
    args = dict(depth=10, width=0.125, heads=HEADS, modalities=MODALITIES)
    args.update(kwargs)
    name = args.pop("name")
    with pytest.raises(error, match=match):
        create_model(name, **args)


def test_bad_inputs():
    model = make("unidual")
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(2, 1, 32, 32))


def test_pathway_bn_stats_share_scale_and_keep_statistics_per_pathway():
    kw = dict(depth=10, width=0.125, heads=HEADS, modalities=MODALITIES, frames=3)
    model = create_model("unidual_aux", **kw)  # the default since the ablation (docs/results.md)
    assert model.spec["options"]["pathway_bn_stats"] is True
    norm = model.backbone.layer1[0].conv1.norm
    assert set(norm.keys()) == {"image", "video"}
    assert norm["image"].weight is norm["video"].weight and norm["image"].bias is norm["video"].bias
    assert norm["image"].running_mean is not norm["video"].running_mean
    shared = create_model("unidual_aux", pathway_bn_stats=False, **kw)
    assert not hasattr(shared.backbone.layer1[0].conv1.norm, "keys")  # one BN, one running average
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n_params(model) == n_params(shared)  # no extra learned parameters
    model.train()
    model(torch.randn(2, 3, 32, 32) * 3 + 1)  # images move only the image statistics
    assert not torch.equal(norm["image"].running_mean, norm["video"].running_mean)
    assert torch.equal(norm["video"].running_mean, torch.zeros_like(norm["video"].running_mean))
    # the tie survives a state_dict round trip and a rebuild from the spec
    again = create_model(
        "unidual_aux",
        channels_last=False,
        **{**kw, **{k: v for k, v in model.spec["options"].items() if k not in ("frames", "modalities")}},
    )
    again.load_state_dict(model.state_dict())
    n2 = again.backbone.layer1[0].conv1.norm
    assert n2["image"].weight is n2["video"].weight and torch.equal(
        n2["image"].running_mean, norm["image"].running_mean
    )


def test_image_init_deflate_starts_image_filters_as_summed_video_filters():
    kw = dict(depth=10, width=0.125, heads=HEADS, modalities=MODALITIES, frames=3)
    model = create_model("unidual", image_init="deflate", **kw)
    pw = model.backbone.layer2[0].conv1.pointwise
    assert torch.equal(pw["image"].weight, pw["video"].weight.sum(2, keepdim=True))
    plain = create_model("unidual", **kw).backbone.layer2[0].conv1.pointwise
    assert not torch.allclose(plain["image"].weight, plain["video"].weight.sum(2, keepdim=True))
    with pytest.raises(ValueError, match="image_init"):
        create_model("unidual", image_init="copy", **kw)


def test_checkpoint_spec_without_pathway_bn_stats_rebuilds_with_shared_statistics():
    """A checkpoint written before the option existed was trained with one running average: it must
    rebuild that way (and load strictly), not with the newer default."""
    old = create_model(
        "unidual", depth=10, width=0.125, heads=HEADS, modalities=MODALITIES, frames=3, pathway_bn_stats=False
    )
    spec = {**old.spec, "options": {k: v for k, v in old.spec["options"].items() if k != "pathway_bn_stats"}}
    rebuilt = build_model(spec)
    assert rebuilt.spec["options"]["pathway_bn_stats"] is False
    rebuilt.load_state_dict(old.state_dict())  # strict: same keys, same shapes
