"""model.dropout (before every head) and model.zero_init_residual (each residual block starts as the identity)."""

from __future__ import annotations

import pytest
import torch

from unidual.models import create_model
from unidual.models.resnet import ResNet2Plus1d

MODS = {"img": "image", "vid": "video"}


def tiny(**kw):
    return create_model(
        "unidual_aux", depth=10, width=0.125, heads={"img": 3, "vid": 4}, frames=2, modalities=MODS, **kw
    )


def test_recipe_switches_leave_state_dict_keys_and_spec_alone():
    torch.manual_seed(0)
    default = tiny()
    torch.manual_seed(0)
    explicit = tiny(dropout=0.0, zero_init_residual=False)
    on = tiny(dropout=0.5, zero_init_residual=True)
    assert list(default.state_dict()) == list(on.state_dict())  # no new tensors: checkpoints load both ways
    assert default.spec == on.spec
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))
    x = torch.randn(2, 3, 32, 32)
    default.eval(), explicit.eval()
    assert torch.equal(default(x)["img"], explicit(x)["img"])


def test_dropout_reaches_every_head_in_training_only():
    model = tiny(dropout=0.5)
    images, clips = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 2, 32, 32)
    for x, pathway in ((images, "image"), (clips, "video")):
        model.train()
        a, b = model(x, pathway=pathway), model(x, pathway=pathway)
        assert set(a) == ({"img", "vid_aux"} if pathway == "image" else {"vid", "img_aux"})
        for head in a:  # task and auxiliary heads alike see dropped features
            assert not torch.allclose(a[head], b[head]), head
        model.eval()
        head = "img" if pathway == "image" else "vid"
        assert torch.equal(model(x, pathway=pathway)[head], model(x, pathway=pathway)[head])
    no_dropout = tiny().train()
    with torch.no_grad():
        assert torch.equal(no_dropout(images)["img"], no_dropout(images)["img"])  # BN in train mode is deterministic
    with pytest.raises(ValueError, match="dropout"):
        tiny(dropout=1.0)


def width_in(block: torch.nn.Module) -> int:
    if block.shortcut is not None:
        return block.shortcut.conv.in_channels
    return next(m for m in block.last_norm().modules() if isinstance(m, torch.nn.BatchNorm3d)).num_features


@pytest.mark.parametrize("depth, pathways", [(10, ("video", "image")), (18, ("video",)), (50, ("image",))])
def test_zero_init_residual_makes_each_block_the_identity_at_start(depth, pathways):
    net = ResNet2Plus1d(depth, pathways=pathways, width=0.125, zero_init_residual=True)
    plain = ResNet2Plus1d(depth, pathways=pathways, width=0.125)
    for train in (True, False):
        net.train(train)
        plain.train(train)
        for pathway in pathways:
            for block, reference in zip(net.blocks(), plain.blocks()):
                channels = width_in(block)
                shape = (2, channels, 4, 8, 8) if pathway == "video" else (2, channels, 8, 8)
                x = torch.rand(shape)  # post-ReLU activations are >= 0
                with torch.no_grad():
                    out = block(x, pathway)
                    if block.shortcut is None:
                        assert torch.equal(out, x), (pathway, train)
                        assert not torch.allclose(reference(x, pathway), x)  # the default init is not
                    else:  # a projection block starts as its shortcut
                        assert torch.allclose(out, torch.relu(block.shortcut(x, pathway)))
