"""hubconf.py: ``torch.hub.load(repo_dir, MODEL, source="local", ...)`` builds the Table-1 models."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import torch

import unidual

ROOT = Path(__file__).resolve().parents[2]
SLIM = {"depth": 10, "width": 0.125, "frames": 4}


def test_hub_has_an_entry_per_table_model():
    kw = {"heads": {"a": 3, "b": 2}, "modalities": {"a": "image", "b": "video"}, **SLIM}
    for name in unidual.list_models():
        model = torch.hub.load(str(ROOT), name, source="local", **kw)
        assert model.spec["name"] == name
    spec = importlib.util.spec_from_file_location("hubconf_under_test", ROOT / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    listed = [f for f in dir(hub) if callable(getattr(hub, f)) and not f.startswith("_")]  # as torch.hub.list
    assert sorted(listed) == sorted(unidual.list_models())
    assert "auxiliary heads" in hub.unidual_aux.__doc__ and "weights:" in hub.unidual_aux.__doc__
    assert list(inspect.signature(hub.r2d).parameters)[:2] == ["depth", "width"]


def test_hub_load_equals_create_model():
    kw = {"heads": {"a": 3, "b": 2}, "modalities": {"a": "image", "b": "video"}, **SLIM}
    torch.manual_seed(0)
    hub = torch.hub.load(str(ROOT), "unidual_aux", source="local", **kw)
    torch.manual_seed(0)
    direct = unidual.create_model("unidual_aux", **kw)
    assert hub.spec == direct.spec
    assert all(torch.equal(a, b) for a, b in zip(hub.state_dict().values(), direct.state_dict().values()))
    r2d = torch.hub.load(str(ROOT), "r2d", source="local", heads={"a": 3}, **SLIM)
    assert r2d.spec["name"] == "r2d" and r2d.pathways == ("image",)


def test_hub_load_with_weights(published, tmp_path, monkeypatch, register):
    net, path = published
    monkeypatch.setenv("UNIDUAL_CACHE", str(tmp_path / "cache"))
    register("tiny", path.as_uri())
    model = torch.hub.load(str(ROOT), "r2plus1d", source="local", weights="tiny").eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["moves"], net(clip), rtol=1e-5, atol=1e-5)
    assert (tmp_path / "cache" / "weights" / path.name).is_file()
