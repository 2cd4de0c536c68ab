"""The regime table: every regime is one typed entry the config checks and the study read; a new regime is one entry."""

from __future__ import annotations

import pytest
from helpers.comparisons import lines_comparing

from unidual.train.config import ConfigError, load_config
from unidual.train.regimes import (
    Regime,
    default_regime,
    get_regime,
    regime_names,
    register_regime,
    unregister_regime,
)

IMAGE = {"key": "img", "modality": "image", "format": "folder", "root": "."}
VIDEO = {"key": "vid", "modality": "video", "format": "folder", "root": "."}


def config(regime: str, model: str, sources: list[dict], **sections) -> dict:
    return {"regime": regime, "model": {"name": model, "depth": 10, "width": 0.125}, "sources": sources, **sections}


@pytest.fixture
def two_sources():
    """A regime the paper does not have: a pretrained R(2+1)D finetuned on any number of sources."""
    entry = register_regime(Regime("pretrained_multitask", "x", models=("r2plus1d",), pretrained=True))
    yield entry
    unregister_regime(entry.name)


def test_a_new_regime_is_one_entry(two_sources):
    assert "pretrained_multitask" in regime_names()
    cfg = load_config(data=config("pretrained_multitask", "r2plus1d", [IMAGE, VIDEO], finetune={"checkpoint": "x.pt"}))
    assert cfg.regime == "pretrained_multitask" and cfg.source_keys == ["img", "vid"]  # not one_source
    with pytest.raises(ConfigError, match=r"finetune\.checkpoint: regime 'pretrained_multitask' needs the pretrained"):
        load_config(data=config("pretrained_multitask", "r2plus1d", [IMAGE, VIDEO]))
    with pytest.raises(ConfigError, match=r"model\.name: regime 'pretrained_multitask' trains one of \['r2plus1d'\]"):
        load_config(data=config("pretrained_multitask", "r2d", [IMAGE], finetune={"checkpoint": "x.pt"}))


def test_the_shipped_entries_say_what_the_config_checks_enforce():
    assert load_config(data=config("separate", "r2d", [IMAGE])).regime == "separate"
    with pytest.raises(ConfigError, match=r"sources: regime 'finetune' trains on exactly one source, got 2"):
        load_config(data=config("finetune", "r2plus1d", [IMAGE, VIDEO], finetune={"checkpoint": "x"}))
    with pytest.raises(ConfigError, match=r"regime: must be one of \['separate', 'finetune', 'multitask', 'unidual'"):
        load_config(data=config("joint", "r2d", [IMAGE]))
    assert [r.name for r in map(get_regime, regime_names()) if r.one_source] == ["separate", "finetune"]
    assert get_regime("multitask").models == ("r2plus1d", "r2d_multitask", "r2plus1d_multitask", "r2d_lstm_multitask")


def test_default_regime_of_a_model():
    assert default_regime("r2d", pretrained=False).name == "separate"
    assert default_regime("r2plus1d", pretrained=True).name == "finetune"
    assert default_regime("r2d_lstm_multitask", pretrained=False).name == "multitask"
    with pytest.raises(ValueError, match="no regime trains model 'unidual' from a pretrained checkpoint"):
        default_regime("unidual", pretrained=True)


def test_entries_are_checked():
    with pytest.raises(ValueError, match="unknown model 'r3d'"):
        Regime("x", "x", models=("r3d",))
    with pytest.raises(ValueError, match="at least one model"):
        Regime("x", "x", models=())
    with pytest.raises(ValueError, match="already registered"):
        register_regime(get_regime("separate"))


def test_no_code_outside_the_table_compares_regime_names():
    assert lines_comparing(regime_names(), outside="regimes.py") == []
