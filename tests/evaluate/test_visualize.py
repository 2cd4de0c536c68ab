"""`unidual visualize`: the chosen channels really are the most activated, and the PNG is written."""

from __future__ import annotations

import pytest
import torch

from unidual.cli import main as cli
from unidual.evaluate.visualize import centre_clip, dual_activations, visualize


def _independent_top3(model, layer_index: int, x: torch.Tensor, pathway: str) -> list[int]:
    """Re-run the pathway, grab the point-wise layer's *input* and apply its conv by hand."""
    from unidual.models import pointwise_layers

    layer = pointwise_layers(model, pathway)[layer_index]
    seen = []
    handle = layer.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0]))
    with torch.no_grad():
        model(x, pathway=pathway)
    handle.remove()
    inp = seen[0]
    if inp.dim() == 4:
        out = torch.nn.functional.conv2d(inp, layer.weight[:, :, 0], None, layer.stride[1:])
    else:
        out = torch.nn.functional.conv3d(inp, layer.weight, None, layer.stride, layer.padding)
    return out[0].flatten(1).mean(1).argsort(descending=True)[:3].tolist()


def test_top_channels_are_the_most_activated(tiny_run):
    from unidual.checkpoint import load_checkpoint

    model = tiny_run["model"]
    payload = load_checkpoint(tiny_run["checkpoint"])
    video = sorted(tiny_run["videos"].rglob("*.mp4"))[0]
    clip, _ = centre_clip(video, payload)
    assert clip.shape == (3, 4, 32, 32)
    for block in (-1, -3):
        acts = dual_activations(model, clip, block)
        assert acts.video.shape[0] == acts.image.shape[0]  # same channels on both pathways
        assert acts.top_channels("video") == _independent_top3(model, block, clip[None], "video")
        assert acts.top_channels("image") == _independent_top3(model, block, clip[None, :, 2], "image")
    with pytest.raises(ValueError, match="residual blocks"):
        dual_activations(model, clip, 99)


def test_cli_writes_png(tiny_run, tmp_path, capsys):
    video = sorted(tiny_run["videos"].rglob("*.mp4"))[0]
    out = tmp_path / "fig.png"
    assert cli(["visualize", str(tiny_run["checkpoint"]), str(video), "--block", "-2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "top channels" in capsys.readouterr().out


def test_visualize_real_kinetics_clip(tiny_run, kinetics_clip, tmp_path):
    info = visualize(tiny_run["checkpoint"], kinetics_clip, tmp_path / "kinetics.png")
    assert (tmp_path / "kinetics.png").stat().st_size > 10_000
    assert len(set(info["video_top"])) == 3 and len(set(info["image_top"])) == 3


def test_visualize_rejects_single_pathway_model(tiny_run, tmp_path, capsys):
    from unidual.checkpoint import save_checkpoint
    from unidual.models import create_model

    model = create_model("r2plus1d", depth=10, width=0.125, heads={"moves": 2}, frames=4)
    ckpt = save_checkpoint(
        tmp_path / "r2plus1d.pt",
        {
            "model": model.state_dict(),
            "model_spec": model.spec,
            "sources": {"moves": {"modality": "video", "classes": ["a", "b"]}},
        },
    )
    video = sorted(tiny_run["videos"].rglob("*.mp4"))[0]
    assert cli(["visualize", str(ckpt), str(video), "--out", str(tmp_path / "x.png")]) == 2
    assert "both pathways" in capsys.readouterr().err
