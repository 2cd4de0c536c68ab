"""`unidual export`: ONNX (onnxruntime) and torch.export .pt2 outputs equal PyTorch's, with a dynamic batch.

Both go through torch.export, so neither may emit a warning (TorchScript, deprecated in torch
2.13, is no longer written)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from unidual.cli import main as cli
from unidual.evaluate.export import export


def _reference(tiny_run, pathway: str, x: torch.Tensor) -> torch.Tensor:
    head = "shapes" if pathway == "image" else "moves"
    with torch.no_grad():
        return tiny_run["model"](x, pathway=pathway)[head]


def _inputs(pathway: str, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(batch)
    shape = (batch, 3, 32, 32) if pathway == "image" else (batch, 3, 4, 32, 32)
    return torch.randn(*shape, generator=g)


@pytest.mark.parametrize("pathway", ["image", "video"])
def test_onnx_matches_pytorch(tiny_run, tmp_path, pathway):
    import onnx
    import onnxruntime as ort

    out = tmp_path / f"{pathway}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = export(tiny_run["checkpoint"], pathway, "onnx", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, out.name + ".json"]  # no external .data file
    graph = onnx.load(str(out)).graph
    assert not any(n.op_type == "BatchNormalization" for n in graph.node)  # conv+BN folded
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs
    assert meta["folded_conv_bn"] > 0
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["layout"] == ("N,3,H,W" if pathway == "image" else "N,3,T,H,W")
    assert sidecar["size"] == [32, 32] and len(sidecar["mean"]) == 3
    assert sidecar["outputs"] == (["shapes"] if pathway == "image" else ["moves"])  # aux head dropped
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert len(session.get_inputs()[0].shape) == (4 if pathway == "image" else 5)
    for batch in (1, 3):  # dynamic batch
        x = _inputs(pathway, batch)
        (got,) = session.run(None, {"input": x.numpy()})
        np.testing.assert_allclose(got, _reference(tiny_run, pathway, x).numpy(), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("pathway", ["image", "video"])
def test_pt2_matches_pytorch(tiny_run, tmp_path, pathway, capsys):
    out = tmp_path / f"{pathway}.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = cli(["export", str(tiny_run["checkpoint"]), "--pathway", pathway, "--format", "pt2", "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        program = torch.export.load(str(out))
        module = program.module()
    assert json.loads(out.with_name(out.name + ".json").read_text())["format"] == "pt2"
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert any("conv" in t for t in targets) and not any("batch_norm" in t for t in targets)  # every BN folded
    for batch in (1, 3):  # dynamic batch
        x = _inputs(pathway, batch)
        with torch.no_grad():
            (got,) = module(x)
        torch.testing.assert_close(got, _reference(tiny_run, pathway, x), atol=1e-4, rtol=1e-3)


def test_torchscript_is_refused_with_the_reason(tiny_run, tmp_path, capsys):
    with pytest.raises(ValueError, match="TorchScript is deprecated in torch 2.13.*use --format pt2"):
        export(tiny_run["checkpoint"], "image", "torchscript", tmp_path / "x.pt")
    with pytest.raises(SystemExit):
        cli(["export", str(tiny_run["checkpoint"]), "--pathway", "image", "--format", "torchscript", "--out", "x"])
    assert "invalid choice: 'torchscript'" in capsys.readouterr().err


def test_export_of_missing_pathway_is_a_clear_error(tmp_path, capsys):
    from unidual.checkpoint import save_checkpoint
    from unidual.models import create_model

    model = create_model("r2plus1d", depth=10, width=0.125, heads={"moves": 2}, frames=4)
    ckpt = save_checkpoint(
        tmp_path / "video_only.pt",
        {
            "model": model.state_dict(),
            "model_spec": model.spec,
            "sources": {"moves": {"modality": "video", "classes": ["a", "b"]}},
        },
    )
    assert cli(["export", str(ckpt), "--pathway", "image", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no image pathway" in capsys.readouterr().err
