"""`unidual features`: one pooled embedding per file, equal to the network's pre-head activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from unidual.checkpoint import load_model
from unidual.cli import main as cli
from unidual.data import SourceSpec
from unidual.data.views import file_views
from unidual.evaluate.predict import spec_for


def _head_inputs(model, views: torch.Tensor, pathway: str, head: str) -> torch.Tensor:
    """What the classifier of ``head`` reads for each view, captured by a hook on it."""
    seen: list[torch.Tensor] = []
    handle = model.heads[head].register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    try:
        with torch.no_grad():
            model(views, pathway=pathway)
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0]


def _load(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return dict(f)


def test_features_of_files_are_the_pre_head_activations(tiny_run, tmp_path, capsys):
    image = sorted((tiny_run["images"] / "test" / "circle").iterdir())[0]
    video = sorted((tiny_run["videos"] / "test" / "left").iterdir())[0]
    out = tmp_path / "feats.npz"
    assert cli(["features", str(tiny_run["checkpoint"]), str(image), str(video), "--out", str(out)]) == 0
    assert "2 embeddings of 64 values" in capsys.readouterr().out
    got = _load(out)
    assert got["features"].shape == (2, 64) and got["features"].dtype == np.float32
    assert list(got["paths"]) == [str(image), str(video)] and list(got["modalities"]) == ["image", "video"]
    assert list(got["labels"]) == [-1, -1] and list(got["label_names"]) == ["", ""]
    model, payload = load_model(tiny_run["checkpoint"])
    for row, (path, modality, head) in enumerate([(image, "image", "shapes"), (video, "video", "moves")]):
        views = file_views(path, modality, spec_for(payload, modality))
        if modality == "video":
            assert views.shape[0] == 3  # the run's 3 test clips, averaged
        expected = _head_inputs(model, views, modality, head).mean(dim=0)
        np.testing.assert_allclose(got["features"][row], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_features_of_sources_carry_labels(tiny_run, tmp_path):
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        yaml.safe_dump(
            [
                {"key": "shapes", "modality": "image", "format": "folder", "root": str(tiny_run["images"])},
                {
                    "key": "moves",
                    "modality": "video",
                    "format": "folder",
                    "root": str(tiny_run["videos"]),
                    "clip": {"frames": 4, "num_clips": 2},
                    "transform": {"protocol": "custom", "resize": 36, "crop": 32},
                },
            ]
        )
    )
    out = tmp_path / "feats.npz"
    assert cli(["features", str(tiny_run["checkpoint"]), "--data", str(sources), "--out", str(out)]) == 0
    got = _load(out)
    assert len(got["paths"]) == 6 + 4 and got["features"].shape[1] == 64
    model, payload = load_model(tiny_run["checkpoint"])
    for path, source, label, name in zip(got["paths"], got["sources"], got["labels"], got["label_names"]):
        assert name == payload["sources"][source]["classes"][label]
        assert f"/{name}/" in path  # the class folder the file sits in
    video = list(got["modalities"]).index("video")
    spec = {"root": ".", **payload["config"]["sources"][1], "clip": {"frames": 4, "num_clips": 2}}
    views = file_views(got["paths"][video], "video", SourceSpec.from_dict(spec))
    expected = _head_inputs(model, views, "video", "moves").mean(dim=0)
    np.testing.assert_allclose(got["features"][video], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_file_is_skipped_and_reported(tiny_run, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    image = sorted((tiny_run["images"] / "test" / "square").iterdir())[0]
    out = tmp_path / "feats.npz"
    assert cli(["features", str(tiny_run["checkpoint"]), str(bad), str(image), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"skipped {bad}" in err and "Traceback" not in err
    assert list(_load(out)["paths"]) == [str(image)]


@pytest.mark.parametrize("argv", [[], ["x.jpg", "--data", "a=b"]])
def test_files_or_data_not_both(tiny_run, tmp_path, capsys, argv):
    assert cli(["features", str(tiny_run["checkpoint"]), *argv, "--out", str(tmp_path / "f.npz")]) == 2
    assert "give files or folders, or --data" in capsys.readouterr().err
