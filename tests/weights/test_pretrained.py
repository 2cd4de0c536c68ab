"""Published weights by name: `unidual convert NAME` and `unidual.create_model(..., weights=NAME)`.

The published file is stood in for by benchmarks/reference.py's R2Plus1d18 (torchvision's
``r2plus1d_18`` topology, random weights, non-trivial BN statistics), served from a ``file://``
URL whose name carries its SHA-256 prefix as torchvision's does.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

import unidual
from unidual import checkpoint as ckpt
from unidual.cli import main as cli
from unidual.convert import ConvertError
from unidual.models.torchvision_keys import unidual_from_torchvision
from unidual.weights import PublishedWeights


@pytest.fixture
def registered(published, tmp_path, monkeypatch, register) -> PublishedWeights:
    monkeypatch.setenv("UNIDUAL_CACHE", str(tmp_path / "cache"))
    return register("tiny_kinetics", published[1].as_uri())


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))


def test_convert_by_name_uses_the_entry(registered, published, tmp_path, clip, capsys):
    net, path = published
    out = tmp_path / "k.pt"
    assert cli(["convert", "tiny_kinetics", "--out", str(out)]) == 0
    assert "head 'moves' with 3 classes, 4-frame clips" in capsys.readouterr().out
    model, payload = ckpt.load_model(out)
    assert payload["converted_from"]["weights"] == "tiny_kinetics"
    assert payload["converted_from"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert payload["config"]["sources"][0]["clip"]["frames"] == 4
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["moves"], net(clip), rtol=1e-5, atol=1e-5)


def test_convert_by_url_and_by_path(published, tmp_path, monkeypatch, clip):
    net, path = published
    monkeypatch.setenv("UNIDUAL_CACHE", str(tmp_path / "cache"))
    for source in (path.as_uri(), str(path)):
        out = tmp_path / "x.pt"
        assert cli(["convert", source, "--out", str(out), "--frames", "4"]) == 0
        model, _ = ckpt.load_model(out)
        assert model.spec["heads"] == {"kinetics": 3}  # no entry: torchvision's Kinetics head name
        with torch.no_grad():
            torch.testing.assert_close(model(clip)["kinetics"], net(clip), rtol=1e-5, atol=1e-5)


def test_create_model_keeps_the_classifier_of_r2plus1d(registered, published, clip):
    net, _ = published
    model = unidual.create_model("r2plus1d", weights="tiny_kinetics").eval()
    assert model.spec["depth"] == 18 and model.spec["heads"] == {"moves": 3} and model.frames == 4
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["moves"], net(clip), rtol=1e-5, atol=1e-5)
    assert model.training is False and unidual.create_model("r2plus1d", weights="tiny_kinetics").training


def test_create_model_starts_unidual_as_finetune_auto_does(registered, published, clip):
    net, _ = published
    kw = {"heads": {"cifar": 10, "moves": 3}, "modalities": {"cifar": "image", "moves": "video"}}
    model = unidual.create_model("unidual_aux", weights="tiny_kinetics", **kw)
    expected = unidual_from_torchvision(net.state_dict(), name="unidual_aux", frames=4, **kw)
    got, want = model.state_dict(), expected.state_dict()
    backbone = [k for k in want if k.startswith("backbone.")]
    assert backbone and all(torch.equal(got[k], want[k]) for k in backbone)  # video copied, image deflated
    with torch.no_grad():  # the video pathway computes the published network's features
        features = model.eval().forward_features(clip, "video")
        ref = net.eval()
        x = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.stem(clip)))))
        torch.testing.assert_close(features, x.mean(dim=(2, 3, 4)), rtol=1e-4, atol=1e-5)


def test_create_model_with_weights_refuses_what_does_not_fit(registered):
    with pytest.raises(ConvertError, match="R\\(2\\+1\\)D-18 weights, but depth=34"):
        unidual.create_model("r2plus1d", depth=34, weights="tiny_kinetics")
    with pytest.raises(ConvertError, match="width: source 1.0, model 0.5"):
        unidual.create_model("r2plus1d", width=0.5, heads={"a": 2}, weights="tiny_kinetics")
    with pytest.raises(ConvertError, match="give heads="):
        unidual.create_model("unidual", modalities={"a": "image"}, weights="tiny_kinetics")
    with pytest.raises(ValueError, match="give weights= too"):
        unidual.create_model("r2plus1d", heads={"a": 2}, sha256="ab" * 32)


def test_r2d_gets_the_deflated_filters(registered, published):
    net, _ = published
    model = unidual.create_model("r2d", heads={"cifar": 10}, weights="tiny_kinetics")
    w = model.state_dict()["backbone.layer1.0.conv1.pointwise.weight"]
    src = net.state_dict()["layer1.0.conv1.0.3.weight"]
    torch.testing.assert_close(w, src.sum(dim=2, keepdim=True))
