"""`unidual info` / `unidual models`: measured parameters and multiply-adds."""

from __future__ import annotations

import json

import pytest
import torch

from unidual.cli import main as cli
from unidual.models import create_model
from unidual.models.commands import parse_heads
from unidual.models.report import count_macs, count_params, report


def test_torchvision_r2plus1d_18_matches_published_numbers():
    with torch.device("meta"):
        model = create_model("r2plus1d", depth=18, heads={"kinetics": 400}, layout="torchvision", frames=16)
    info = report(model, frames=16, size=112)
    assert info["params"] == 31_505_325
    # torchvision lists 40.5 "GFLOPS" for r2plus1d_18 at 16x112x112: they are multiply-adds
    assert info["gmacs"]["clip"] == pytest.approx(40.5, abs=0.05)
    assert "multiply-adds" in info["convention"]


def test_macs_follow_what_ran():
    model = create_model(
        "unidual", depth=10, width=0.125, heads={"i": 3, "v": 4}, modalities={"i": "image", "v": "video"}
    ).eval()
    img, clip = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 4, 32, 32)
    image_macs, clip_macs = count_macs(model, img), count_macs(model, clip)
    frames_on_image_path = count_macs(model, clip, "image")
    assert frames_on_image_path == 4 * image_macs - 3 * model.heads["i"].in_features * 3  # head runs once
    assert image_macs < clip_macs < frames_on_image_path * 3
    # one 1x3x3 conv: images count H·W·C_out·C_in·9, clips T times that
    conv = create_model("r2d", depth=10, width=0.125, heads={"a": 2}).backbone.layer1[0].conv1.spatial
    assert (
        count_macs(_Wrap(conv), torch.zeros(1, conv.in_channels, 8, 8)) == 64 * conv.out_channels * conv.in_channels * 9
    )
    assert (
        count_macs(_Wrap(conv), torch.zeros(1, conv.in_channels, 2, 8, 8))
        == 2 * 64 * conv.out_channels * conv.in_channels * 9
    )


class _Wrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x, pathway=None):
        return self.m(x)


def test_params_per_pathway_add_up():
    model = create_model(
        "unidual_aux", depth=10, width=0.25, heads={"i": 3, "v": 4}, modalities={"i": "image", "v": "video"}
    )
    p = count_params(model)
    names: dict[int, list[str]] = {}
    tensors = {}
    for k, t in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(t), []).append(k)
        tensors[id(t)] = t
    # shared by both pathways: no pathway in its name, or (BN scale/shift with statistics per pathway)
    # one tensor registered under both pathways' names
    shared = sum(
        tensors[i].numel()
        for i, ks in names.items()
        if not any(k.startswith("heads.") for k in ks)
        and (all(".video." not in k and ".image." not in k for k in ks)
             or (any(".video." in k for k in ks) and any(".image." in k for k in ks)))
    )  # fmt: skip
    per = p["params_per_pathway"]
    assert per["image"] + per["video"] - shared == p["params"]
    assert per["video"] > per["image"]  # t×1×1 vs 1×1 filters


def test_cli_info_json_and_models(capsys):
    assert (
        cli(["info", "unidual_aux", "--depth", "10", "--width", "0.25", "--frames", "4", "--size", "64", "--json"]) == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["params"] > 0 and set(info["gmacs"]) == {"clip", "image"}
    assert set(info["params_per_pathway"]) == {"image", "video"}
    assert cli(["info", "r2d", "--depth", "18"]) == 0
    assert "GMACs per clip" in capsys.readouterr().out
    assert cli(["models"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in ("r2d_lstm_multitask", "unidual_aux", "r2plus1d_multitask"))


def test_parse_heads_errors():
    assert parse_heads("a=3:image,b=4:video") == ({"a": 3, "b": 4}, {"a": "image", "b": "video"})
    with pytest.raises(ValueError, match="KEY=CLASSES"):
        parse_heads("a:3")


def test_unidual_pathways_count_as_the_single_modality_models():
    """Each pathway of UniDual is R2D / R(2+1)D with the shared filters: the same parameter counts,
    also when BN scale/shift are shared by both pathways' statistics (``pathway_bn_stats``)."""
    from unidual.models import create_model
    from unidual.models.report import count_params

    heads = {"img": 10, "vid": 7}
    modalities = {"img": "image", "vid": "video"}
    uni = count_params(create_model("unidual", depth=18, width=0.25, heads=heads, modalities=modalities))
    r2d = count_params(create_model("r2d", depth=18, width=0.25, heads={"img": 10}))
    r21d = count_params(create_model("r2plus1d", depth=18, width=0.25, heads={"vid": 7}))
    assert uni["params_per_pathway"] == {"image": r2d["params"], "video": r21d["params"]}
