"""The public API: ``unidual.create_model`` / ``load_model`` / ``list_models`` / ``list_weights`` and ``__all__``."""

from __future__ import annotations

import inspect
import pydoc

import pytest
import torch

import unidual
from unidual.checkpoint import save_checkpoint
from unidual.models.registry import list_models as table_names


def test_all_names_exist():
    assert set(unidual.__all__) == {"__version__", "create_model", "list_models", "list_weights", "load_model"}
    for name in unidual.__all__:
        assert hasattr(unidual, name)


def test_create_model_shows_its_real_signature():
    params = inspect.signature(unidual.create_model).parameters
    assert list(params)[:7] == ["name", "depth", "width", "heads", "weights", "sha256", "channels_last"]
    assert params["depth"].kind is inspect.Parameter.KEYWORD_ONLY and params["width"].default == 1.0
    text = pydoc.render_doc(unidual.create_model, renderer=pydoc.plaintext)
    assert "weights: 'str | os.PathLike | None' = None" in text and "modalities=" in text


def test_create_model_builds_as_the_registry_does():
    kw = {"heads": {"a": 3, "b": 2}, "modalities": {"a": "image", "b": "video"}, "frames": 4}
    torch.manual_seed(0)
    model = unidual.create_model("unidual_aux", depth=10, width=0.125, **kw)
    assert model.spec["depth"] == 10 and sorted(model.heads) == ["a", "a_aux", "b", "b_aux"]
    assert unidual.create_model("r2d", heads={"a": 3}).spec["depth"] == 34  # the registry's default depth
    with pytest.raises(TypeError, match="unknown option"):
        unidual.create_model("r2d", depth=10, heads={"a": 3}, bogus=1)
    with pytest.raises(ValueError, match="heads must be a non-empty dict"):
        unidual.create_model("r2d", depth=10)


def test_list_models_takes_a_pattern():
    assert unidual.list_models() == table_names()
    assert unidual.list_models("r2d*") == ["r2d", "r2d_multitask", "r2d_lstm_multitask"]
    assert unidual.list_models("*aux") == ["unidual_aux"]
    assert unidual.list_models("nothing*") == []
    assert unidual.list_weights("r2plus1d_34_*_kinetics") == ["r2plus1d_34_8_kinetics", "r2plus1d_34_32_kinetics"]


def test_load_model_returns_the_deployed_network(tmp_path):
    model = unidual.create_model(
        "unidual_aux",
        depth=10,
        width=0.125,
        heads={"a": 3, "b": 2},
        modalities={"a": "image", "b": "video"},
        frames=4,
    )
    save_checkpoint(tmp_path / "run" / "best.pt", {"model": model.state_dict(), "model_spec": model.spec})
    loaded = unidual.load_model(tmp_path / "run")
    assert not loaded.training and sorted(loaded.heads) == ["a", "b"]  # aux heads dropped
    assert sorted(unidual.load_model(tmp_path / "run", deploy=False).heads) == ["a", "a_aux", "b", "b_aux"]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["a"], model.eval()(x)["a"])
