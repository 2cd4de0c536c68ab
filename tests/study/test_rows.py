"""Study rows that name a model: their training config is the study's recipe + the model and regime tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.tinystudy import TINY_BASE, write_tiny_study

from unidual.study.config import StudyError, load_study
from unidual.study.runner import plan, resolve_config
from unidual.yamlconfig import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "cpu"


def tiny(tmp_path, photos, models, **extra):
    return load_study(write_tiny_study(tmp_path, photos, models=models, extra={"train_config": "base.yaml", **extra}))


def resolved(study, out: Path, seed: int = 0):
    return {t.model.id: resolve_config(study, t, None) for t in plan(study, out, [seed])}


def test_a_model_row_is_the_recipe_with_what_the_tables_say(tmp_path, photos):
    models = [
        {"id": "r2d", "row": "R2D", "model": "r2d"},
        {"id": "ft", "row": "FT", "model": "r2plus1d", "pretrained": "r2d"},
        {"id": "mt", "row": "MT", "model": "r2d_lstm_multitask"},
        {"id": "joint", "row": "J", "model": "unidual_aux", "overrides": ["optim.lr=0.5"]},
    ]
    configs = resolved(tiny(tmp_path, photos, models), tmp_path / "out")
    r2d, ft, mt, joint = (configs[k] for k in ("r2d", "ft", "mt", "joint"))
    assert (r2d.regime, r2d.model.name, r2d.source_keys, r2d.run.name) == ("separate", "r2d", ["img"], "r2d")
    assert r2d.data.epoch_size == TINY_BASE["data"]["epoch_size"] // 2  # one of the recipe's two sources
    assert (ft.regime, ft.source_keys, ft.finetune.convert) == ("finetune", ["vid"], "inflate")  # the table's
    assert ft.finetune.checkpoint == str(tmp_path / "out" / "seed0" / "r2d" / "last.pt")
    assert (mt.regime, mt.source_keys, mt.data.epoch_size) == ("multitask", ["img", "vid"], 16)
    assert mt.model.options == {}  # the recipe's; the model's own options are create_model's defaults
    assert (joint.regime, joint.optim.lr, r2d.optim.lr) == ("unidual_aux", 0.5, 0.05)
    # everything else is the recipe's
    assert r2d.model.depth == ft.model.depth == joint.model.depth == TINY_BASE["model"]["depth"]
    assert r2d.sources[0].transform == joint.sources[0].transform


def test_a_row_may_pick_its_sources_and_regime(tmp_path, photos):
    models = [
        {"id": "r2p_img", "row": "R", "model": "r2plus1d", "sources": ["img"]},
        {"id": "r2p_mt", "row": "M", "model": "r2plus1d", "regime": "multitask"},
    ]
    configs = resolved(tiny(tmp_path, photos, models, columns=[{"source": "img"}, {"source": "vid"}]), tmp_path)
    assert (configs["r2p_img"].regime, configs["r2p_img"].source_keys) == ("separate", ["img"])
    assert (configs["r2p_mt"].regime, configs["r2p_mt"].source_keys) == ("multitask", ["img", "vid"])


@pytest.mark.parametrize(
    "row, message",
    [
        ({"model": "r3d"}, r"models\.0\.model: must be one of \['r2d', 'r2plus1d'"),
        ({"model": "r2d", "config": "r2d.yaml"}, r"models\.0\.model: give either model: NAME .* or config: FILE"),
        ({}, r"models\.0\.model: give either"),
        ({"model": "r2d", "regime": "joint"}, r"models\.0\.regime: must be one of \['separate'"),
        ({"config": "r2d.yaml", "sources": ["img"]}, r"models\.0\.sources: is for model: rows only"),
        ({"model": "r2d", "sources": ["nope"]}, r"sources: \['nope'\] are not sources of the base config"),
        ({"model": "r2d", "regime": "unidual"}, r"model\.name: regime 'unidual' trains one of \['unidual'\]"),
    ],
)
def test_bad_model_rows_name_the_problem(tmp_path, photos, row, message):
    path = write_tiny_study(
        tmp_path, photos, models=[{"id": "x", "row": "X", **row}], extra={"train_config": "base.yaml"}
    )
    with pytest.raises(ConfigError, match=message) as info:  # StudyError, or ConfigError once resolved
        study = load_study(path)
        resolved(study, tmp_path)
    assert str(path) in str(info.value)


def test_a_model_row_needs_the_recipe(tmp_path, photos):
    path = write_tiny_study(tmp_path, photos, models=[{"id": "x", "row": "X", "model": "r2d"}])
    with pytest.raises(StudyError, match=r"models\.0\.model: needs the study's train_config"):
        load_study(path)
    path = write_tiny_study(
        tmp_path, photos, models=[{"id": "x", "row": "X", "model": "r2d"}], extra={"train_config": "no.yaml"}
    )
    with pytest.raises(StudyError, match=r"train_config: training config not found"):
        load_study(path)


def test_one_source_regimes_need_one_source_of_the_models_modality(tmp_path, photos):
    recipe = {**TINY_BASE, "sources": [*TINY_BASE["sources"], {**TINY_BASE["sources"][1], "key": "vid2"}]}
    root = tmp_path / "s"
    path = write_tiny_study(
        root, photos, models=[{"id": "x", "row": "X", "model": "r2plus1d"}], extra={"train_config": "three.yaml"}
    )
    (root / "three.yaml").write_text(yaml.safe_dump({**recipe, "data": {**recipe["data"], "epoch_size": 16}}))
    with pytest.raises(
        StudyError, match=r"trains 'r2plus1d' on one video source; the base config has \['vid', 'vid2'\]: name it"
    ):
        load_study(path)
    edited = yaml.safe_load(path.read_text())
    edited["models"][0]["sources"] = ["vid2"]
    edited["columns"] = [{"source": "vid2"}]
    path.write_text(yaml.safe_dump(edited))
    with pytest.raises(StudyError, match=r"data\.epoch_size: 16 of the base does not split into equal shares of its 3"):
        load_study(path)
    (root / "three.yaml").write_text(
        yaml.safe_dump({**recipe, "data": {**recipe["data"], "epoch_size": 24, "weights": {"img": 1, "vid2": 3}}})
    )
    (cfg,) = resolved(load_study(path), root).values()
    assert (cfg.source_keys, cfg.data.epoch_size, cfg.data.weights) == (["vid2"], 8, {"vid2": 3.0})


def test_shipped_table2_rows_are_models_of_the_table():
    for folder in ("study", "study_default"):
        study = load_study(CONFIGS / folder / "study.yaml")
        assert all(m.config is None and m.model for m in study.models)
        assert not [p.name for p in (CONFIGS / folder).glob("*.yaml") if p.name not in ("base.yaml", "study.yaml")]
