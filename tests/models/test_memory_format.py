"""Channels-last memory format: the default layout, its switches, and that it never changes values."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from unidual.models import create_model, is_channels_last, set_memory_format
from unidual.models.memory import ENV_SWITCH

HEADS = {"img": 3, "vid": 4}
MODALITIES = {"img": "image", "vid": "video"}


def _model(**kw) -> torch.nn.Module:
    return create_model("unidual_aux", depth=10, width=0.125, heads=HEADS, modalities=MODALITIES, frames=4, **kw)


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 5]


def test_default_is_channels_last_and_switches_turn_it_off(monkeypatch):
    model = _model()
    assert is_channels_last(model)
    assert all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in _conv_weights(model))
    # the image pathway's 2D weights are views of the 5D ones: channels-last 2D weights
    spatial = model.backbone.layer1[0].conv1.spatial.weight
    assert spatial[:, :, 0].is_contiguous(memory_format=torch.channels_last)

    plain = _model(channels_last=False)
    assert not is_channels_last(plain) and all(w.is_contiguous() for w in _conv_weights(plain))
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert not is_channels_last(_model())
    assert is_channels_last(_model(channels_last=True))  # an explicit argument wins over the environment


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "maybe")
    with pytest.raises(ValueError, match=ENV_SWITCH):
        _model()


def test_activations_stay_channels_last_on_both_pathways():
    """Weights decide the layout: a plain contiguous batch comes out of every block channels-last."""
    model = _model().eval()
    seen: list[tuple[int, bool]] = []

    def hook(_m, _inp, out):
        fmt = torch.channels_last_3d if out.dim() == 5 else torch.channels_last
        seen.append((out.dim(), out.is_contiguous(memory_format=fmt)))

    handles = [b.register_forward_hook(hook) for b in model.backbone.blocks()]
    with torch.no_grad():  # batch 16: with one thread PyTorch sends smaller point-wise conv batches to
        model(torch.randn(16, 3, 4, 32, 32))  # its non-oneDNN kernel, which returns contiguous outputs
        model(torch.randn(16, 3, 32, 32))
    for h in handles:
        h.remove()
    assert {d for d, _ in seen} == {4, 5} and all(ok for _, ok in seen)


def test_same_values_as_contiguous_model_forward_and_backward():
    cl = _model()
    plain = set_memory_format(copy.deepcopy(cl), channels_last=False)
    assert not is_channels_last(plain)
    clip, image = torch.randn(3, 3, 4, 32, 32), torch.randn(3, 3, 32, 32)
    cl.eval(), plain.eval()
    with torch.no_grad():
        for x, pathway in ((clip, "video"), (image, "image"), (image, "video"), (clip, "image")):
            a, b = cl(x, pathway=pathway), plain(x, pathway=pathway)
            assert a.keys() == b.keys()
            for k in a:
                torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    cl.train(), plain.train()
    y = torch.tensor([0, 1, 3])
    for m in (cl, plain):
        F.cross_entropy(m(clip)["vid"], y).backward()
    torch.testing.assert_close(cl.heads["vid"].weight.grad, plain.heads["vid"].weight.grad, rtol=1e-3, atol=1e-5)
    g_cl = cl.backbone.layer4[0].conv2.pointwise["video"].weight.grad
    g_plain = plain.backbone.layer4[0].conv2.pointwise["video"].weight.grad
    assert g_cl.is_contiguous(memory_format=torch.channels_last_3d)  # gradients follow the parameter layout
    assert float((g_cl - g_plain).norm() / g_plain.norm()) < 1e-3


def test_state_dicts_load_across_formats_and_parameters_are_kept():
    cl, plain = _model(), _model(channels_last=False)
    plain.load_state_dict(cl.state_dict())
    assert not is_channels_last(plain)  # loading copies values, the destination keeps its layout
    params = list(plain.parameters())
    set_memory_format(plain, channels_last=True)
    assert is_channels_last(plain) and all(a is b for a, b in zip(params, plain.parameters()))
    for (k, a), b in zip(cl.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), k
