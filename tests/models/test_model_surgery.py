"""Weight surgery: the identities that hold exactly, and deflation away from clip borders."""

from __future__ import annotations

import pytest
import torch

from unidual.models import create_model
from unidual.models.layers import UniDualBlock
from unidual.models.surgery import deflate, export_pathway, inflate, load_backbone

HEADS = {"cifar": 10, "motion": 5}
MODALITIES = {"cifar": "image", "motion": "video"}


def make(name, depth=10, **kw):
    return create_model(name, depth=depth, width=0.125, heads=HEADS, modalities=MODALITIES, frames=3, **kw)


def randomise_bn(model):
    """Non-trivial running stats so eval-mode BN is not the identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def test_deflate_inflate_tensors():
    w = torch.randn(4, 3, 3, 1, 1)
    assert torch.equal(deflate(w), w.sum(2, keepdim=True))
    w1 = torch.randn(4, 3, 1, 1, 1)
    centre = inflate(w1, 3)
    assert torch.equal(centre[:, :, 1:2], w1) and centre[:, :, [0, 2]].abs().sum() == 0
    torch.testing.assert_close(deflate(inflate(w1, 5, "mean")), w1)
    torch.testing.assert_close(deflate(centre), w1)
    with pytest.raises(ValueError, match="point-wise"):
        deflate(torch.randn(4, 3, 3, 3, 3))
    with pytest.raises(ValueError, match="mode"):
        inflate(w1, 3, "zeros")


@pytest.mark.parametrize("name", ["unidual", "unidual_aux"])
@pytest.mark.parametrize("pathway", ["image", "video"])
def test_export_pathway_is_exact(name, pathway):
    model = randomise_bn(make(name, per_pathway_bn=(name == "unidual"))).eval()
    exported = export_pathway(model, pathway).eval()
    assert exported.name == ("r2d" if pathway == "image" else "r2plus1d")
    assert set(exported.heads) == set(model.heads.on(pathway))
    with torch.no_grad():
        for x in (torch.randn(2, 3, 32, 32), torch.randn(2, 3, 4, 32, 32)):
            ours, theirs = model(x, pathway=pathway), exported(x)
            assert set(ours) == set(theirs)
            for k in ours:
                assert torch.equal(ours[k], theirs[k]), k


def test_deflate_model_static_clip_single_layer_away_from_borders():
    torch.manual_seed(0)
    video = UniDualBlock(4, 6, 5, pathways=("video",)).eval()
    image = UniDualBlock(4, 6, 5, pathways=("image",)).eval()
    image.load_state_dict({**video.state_dict(), "pointwise.weight": deflate(video.pointwise.weight)})
    frame = torch.randn(2, 4, 8, 8)
    static = frame.unsqueeze(2).expand(-1, -1, 6, -1, -1)
    with torch.no_grad():
        clip_out, img_out = video(static, "video"), image(frame, "image")
    for t in range(1, 5):  # interior frames: all three taps see the same frame
        torch.testing.assert_close(clip_out[:, :, t], img_out, rtol=1e-5, atol=1e-5)
    for t in (0, 5):  # border frames: one tap reads the zero padding instead
        assert not torch.allclose(clip_out[:, :, t], img_out, atol=1e-3)


def test_deflated_network_matches_middle_of_long_static_clip():
    # depth 10, no temporal strides: 9 temporal convs, so frames 9..T-10 are border-free
    src = randomise_bn(make("r2plus1d", temporal_strides=False)).eval()
    dst = make("r2d", temporal_strides=False).eval()
    missing = load_backbone(dst, src.state_dict(), convert="deflate")
    assert missing and all(k.startswith("heads.") for k in missing)
    img = torch.randn(1, 3, 16, 16)
    static = img.unsqueeze(2).expand(-1, -1, 21, -1, -1)
    with torch.no_grad():
        clip_maps = src.backbone(static, "video")
        img_maps = dst.backbone(img, "image")
    torch.testing.assert_close(clip_maps[:, :, 10], img_maps, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(clip_maps[:, :, 0], img_maps, atol=1e-3)


@pytest.mark.parametrize("mode", ["center", "mean"])
def test_inflated_network_on_static_clip(mode):
    src = randomise_bn(make("r2d")).eval()
    dst = make("r2plus1d").eval()
    load_backbone(dst, src.state_dict(), convert="inflate", inflate_mode=mode)
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a = src.forward_features(img)
        b = dst.forward_features(img.unsqueeze(2).expand(-1, -1, 8, -1, -1))
    if mode == "center":  # exact for any clip length, borders included
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    else:  # borders differ: zero temporal padding
        assert not torch.allclose(a, b, atol=1e-4)


def test_inflate_center_equals_frame_by_frame_on_moving_clip():
    src = randomise_bn(make("r2d", temporal_strides=False)).eval()
    dst = make("r2plus1d", temporal_strides=False).eval()
    load_backbone(dst, src.state_dict(), convert="inflate")
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst.forward_features(clip), src.forward_features(clip), rtol=1e-4, atol=1e-5)


def test_unidual_from_r2plus1d_video_pathway_and_deflated_image_pathway():
    src = randomise_bn(make("r2plus1d")).eval()
    dst = make("unidual_aux").eval()
    missing = load_backbone(dst, src.state_dict(), convert="deflate")
    assert sorted(missing) == sorted(k for k in dst.state_dict() if k.startswith("heads."))
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(dst.forward_features(clip, "video"), src.forward_features(clip))
    for a, b in zip(dst.backbone.pointwise_layers("image"), src.backbone.pointwise_layers("video")):
        assert torch.equal(a.weight, deflate(b.weight))


def test_load_backbone_same_architecture_and_errors():
    src, dst = make("unidual"), make("unidual_aux")
    missing = load_backbone(dst, src.state_dict())
    assert all(k.startswith("heads.") for k in missing)
    for (k, a), b in zip(dst.backbone.state_dict().items(), src.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="convert="):
        load_backbone(make("r2d"), make("r2plus1d").state_dict())
    with pytest.raises(ValueError, match="lacks"):
        load_backbone(make("r2d"), {})
    with pytest.raises(ValueError, match="does not fit"):
        load_backbone(make("r2d", depth=18), create_model("r2d", depth=18, width=0.25, heads=HEADS).state_dict())
    with pytest.raises(ValueError, match="unidual"):
        export_pathway(make("r2d"), "image")


def test_real_size_parameter_counts():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    vmz34 = count(create_model("r2plus1d", depth=34, heads={"kinetics": 400}))
    assert 63_600_000 <= vmz34 <= 63_800_000
    tv18 = count(create_model("r2plus1d", depth=18, heads={"kinetics": 400}, layout="torchvision"))
    assert tv18 == 31_505_325
