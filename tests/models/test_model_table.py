"""The model table: every Table-1 model is one typed entry that every consumer reads; a new model is one entry."""

from __future__ import annotations

import pytest
import torch
from helpers.comparisons import lines_comparing

import unidual
from unidual.cli import main as cli
from unidual.models import ModelDef, create_model, get_model_def, register_model
from unidual.models.surgery import load_backbone
from unidual.models.table import unregister_model
from unidual.train.config import ConfigError, load_config
from unidual.train.objectives import Objective
from unidual.train.regimes import allow_model, get_regime, register_regime


@pytest.fixture
def toy_model():
    """R2D frame features + LSTM trained alone on videos: a model the paper does not have."""
    definition = register_model(
        ModelDef(
            "toy_r2d_lstm",
            "toy: R2D on frames + LSTM, video only",
            backbone_pathways=("image",),
            route={"video": "image"},
            temporal="lstm",
            pretrained_convert="deflate",
            options={"lstm_hidden": 16},
        )
    )
    separate = get_regime("separate")
    allow_model(definition.name, "separate")  # the regime table says who trains it
    yield definition
    register_regime(separate, replace=True)
    unregister_model(definition.name)


def test_a_registered_toy_model_is_built_listed_trained_and_routed(toy_model, capsys, tmp_path):
    assert "toy_r2d_lstm" in unidual.list_models() and get_regime("separate").models[-1] == "toy_r2d_lstm"
    model = create_model("toy_r2d_lstm", depth=10, width=0.125, heads={"vid": 3}, frames=4)
    assert model.pathways == ("video",) and type(model.temporal).__name__ == "LSTMOverTime"
    assert model.temporal.out_features == 16 and model.spec["options"]["lstm_hidden"] == 16
    out = model(torch.randn(2, 3, 4, 32, 32))
    assert set(out) == {"vid"} and out["vid"].shape == (2, 3)
    # the objective reads the table: no auxiliary heads, every clip on the model's only pathway
    sub = {"vid": {"input": torch.randn(2, 3, 4, 32, 32), "label": torch.tensor([0, 2])}}
    stats = Objective.from_config(load_config(data=_cfg("separate", "toy_r2d_lstm")))(model, sub)
    assert set(stats.count) == {"vid"}
    assert cli(["models"]) == 0 and "toy: R2D on frames + LSTM, video only" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="regime 'multitask' trains one of"):
        load_config(data=_cfg("multitask", "toy_r2d_lstm"))


def _cfg(regime: str, name: str) -> dict:
    return {
        "regime": regime,
        "model": {"name": name, "depth": 10, "width": 0.125},
        "sources": [{"key": "vid", "modality": "video", "format": "folder", "root": "."}],
    }


def test_definitions_are_checked():
    with pytest.raises(ValueError, match="route"):
        ModelDef("bad", "x", backbone_pathways=("image",), route={"video": "video"})
    with pytest.raises(ValueError, match="auxiliary heads need"):
        ModelDef("bad", "x", backbone_pathways=("video",), route={"video": "video"}, aux_heads=True)
    with pytest.raises(ValueError, match="already registered"):
        register_model(get_model_def("r2d"))


def test_table_fields_drive_the_models():
    aux = create_model(
        "unidual_aux", depth=10, width=0.125, heads={"i": 2, "v": 3}, modalities={"i": "image", "v": "video"}
    )
    plain = create_model(
        "unidual", depth=10, width=0.125, heads={"i": 2, "v": 3}, modalities={"i": "image", "v": "video"}
    )
    assert set(aux.heads.keys()) == {"i", "v", "i_aux", "v_aux"} and set(plain.heads.keys()) == {"i", "v"}
    assert aux.deploy() is aux and set(aux.heads.keys()) == {"i", "v"}
    with pytest.raises(ValueError, match="modalities"):
        create_model("unidual", depth=10, width=0.125, heads={"i": 2})
    assert get_model_def("r2d_lstm_multitask").temporal == "lstm"
    assert get_model_def("unidual").needs_modalities == ("image", "video")


@pytest.mark.parametrize(
    "src_name, dst_name",
    [("r2plus1d", "unidual"), ("unidual", "unidual"), ("r2plus1d", "r2d"), ("unidual", "r2d"), ("r2d", "r2plus1d")],
)
def test_pretrained_convert_of_the_table_fills_only_what_the_source_lacks(src_name, dst_name):
    kw = dict(depth=10, width=0.125, heads={"v": 3}, frames=4)
    mods = {"modalities": {"v": "video"}}
    src = create_model(src_name, **kw, **(mods if get_model_def(src_name).heads_by_modality else {}))
    dst = create_model(dst_name, **kw, **(mods if get_model_def(dst_name).heads_by_modality else {}))
    load_backbone(dst, src.state_dict(), convert=get_model_def(dst_name).pretrained_convert, own_pathway_first=True)
    s, d = src.state_dict(), dst.state_dict()
    key = "backbone.layer1.0.conv1.pointwise{}.weight"
    src_video = s[key.format(".video" if src_name.startswith("unidual") else "")]
    if dst_name == "unidual":
        want_image = s[key.format(".image")] if src_name == "unidual" else src_video.sum(2, keepdim=True)
        assert torch.equal(d[key.format(".video")], src_video)
        assert torch.allclose(d[key.format(".image")], want_image)
    elif dst_name == "r2d":
        want = s[key.format(".image")] if src_name == "unidual" else src_video.sum(2, keepdim=True)
        assert torch.allclose(d[key.format("")], want)
    else:  # r2d -> r2plus1d: centre tap
        assert torch.equal(d[key.format("")][:, :, 1], s[key.format("")][:, :, 0])


def test_no_code_outside_the_table_compares_model_names():
    assert lines_comparing([get_model_def(n).name for n in ("r2d", "r2plus1d", "unidual")], outside="table.py") == []
