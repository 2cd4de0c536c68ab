"""`unidual export CHECKPOINT --pathway image|video --format onnx|pt2 --out FILE`.

One pathway becomes a standalone network, as the paper deploys it: the image
pathway is an R2D (input ``(N, 3, H, W)``; every temporal kernel is 1 so it
runs as 2D convolutions), the video pathway an R(2+1)D (input
``(N, 3, T, H, W)``). Auxiliary heads are dropped, every conv+BN pair is folded
into one convolution, and the batch dimension is dynamic. Outputs are the
logits of the pathway's heads, in the order listed in the JSON sidecar
(``FILE.json``) that also records the preprocessing: pixels in [0, 1], resized
and cropped as the run's test transform, normalised with ``mean``/``std``.

Both formats go through ``torch.export`` (what torch recommends now that TorchScript is
deprecated): ``pt2`` is the ``ExportedProgram`` itself (``torch.export.save``; load it with
``torch.export.load(FILE).module()``), ``onnx`` is torch's dynamo-based ONNX exporter on that
program, one self-contained file (weights inside, not in a ``.data`` file beside it).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from unidual.checkpoint import load_model
from unidual.compat import require_torch
from unidual.evaluate.fold import fold_batchnorm
from unidual.evaluate.predict import spec_for
from unidual.models import ImageVideoNet
from unidual.models.memory import set_memory_format
from unidual.models.surgery import export_pathway
from unidual.pathways import MODALITIES

FORMATS = ("onnx", "pt2")
_REMOVED = {"torchscript": "TorchScript is deprecated in torch 2.13 (torch.jit.trace/load warn); use --format pt2"}


class ExportedPathway(nn.Module):
    """A single-pathway network returning a tuple of head logits (tracers want tensors, not dicts)."""

    def __init__(self, net: nn.Module, heads: list[str]) -> None:
        super().__init__()
        self.net = net
        self.heads = list(heads)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.net(x)
        return tuple(out[h] for h in self.heads)


def standalone_pathway(model: ImageVideoNet, pathway: str) -> ImageVideoNet:
    """The deployed network of one pathway: ``surgery.export_pathway`` for UniDual, the model itself otherwise."""
    if pathway not in MODALITIES:
        raise ValueError(f"pathway must be one of {MODALITIES}, got {pathway!r}")
    pathways = tuple(model.pathways)
    model.deploy()
    if pathway not in pathways:
        raise ValueError(f"model {model.spec['name']!r} has no {pathway} pathway (it has {pathways})")
    net = model if pathways == (pathway,) else export_pathway(model, pathway)
    return net.eval()


def example_input(pathway: str, size: int, frames: int, batch: int = 2) -> Tensor:
    shape = (batch, 3, size, size) if pathway == "image" else (batch, 3, frames, size, size)
    return torch.randn(*shape)


def input_description(payload: Mapping[str, Any], pathway: str, heads: list[str]) -> dict[str, Any]:
    """The sidecar: layout, size, frames, normalisation and the label map of every output."""
    spec = spec_for(payload, pathway)
    t = spec.transform
    plan = t.plan(pathway, "test")
    size = plan.crop or (plan.resize[-1] if plan.resize else 112)
    sources = payload.get("sources", {})
    return {
        "pathway": pathway,
        "layout": "N,3,H,W" if pathway == "image" else "N,3,T,H,W",
        "size": [size, size],
        "frames": None if pathway == "image" else spec.clip.frames,
        "resize": list(plan.resize) if plan.resize else None,
        "pixel_range": [0.0, 1.0],
        "channel_order": "RGB",
        "mean": list(plan.mean),
        "std": list(plan.std),
        "outputs": heads,
        "output_kind": "logits (apply softmax for probabilities)",
        "classes": {h: list(sources.get(h, {}).get("classes", [])) for h in heads},
    }


def prepare(
    model: ImageVideoNet, payload: Mapping[str, Any], pathway: str
) -> tuple[ExportedPathway, Tensor, dict[str, Any]]:
    """(folded single-pathway wrapper, example input, sidecar dict)."""
    net = standalone_pathway(model, pathway)
    heads = sorted(net.heads.on(pathway))
    meta = input_description(payload, pathway, heads)
    example = example_input(pathway, meta["size"][0], meta["frames"] or 1)
    folded, pairs = fold_batchnorm(net, example)
    meta["folded_conv_bn"] = len(pairs)
    wrapper = ExportedPathway(folded, heads).eval()
    set_memory_format(wrapper, False)  # channels-last is a runtime choice; torch.export.save warns on its strides
    return wrapper, example, meta


def _dynamic_batch() -> tuple[dict[int, Any]]:
    return ({0: torch.export.Dim("batch", min=1)},)


def to_pt2(module: nn.Module, example: Tensor, out: Path) -> None:
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=_dynamic_batch())
    torch.export.save(program, str(out))


def to_onnx(module: nn.Module, example: Tensor, out: Path, outputs: list[str]) -> None:
    require_torch("2.5", "unidual export --format onnx")  # torch.onnx.export(dynamo=...)
    import onnx

    exporter_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms", x4
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch's own exporter deep-copies pytree specs through a path it deprecated itself
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            torch.onnx.export(
                module,
                (example,),
                str(out),
                input_names=["input"],
                output_names=outputs,
                dynamic_shapes=_dynamic_batch(),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    onnx.checker.check_model(str(out))


def export(
    checkpoint: str | Path, pathway: str, fmt: str, out: str | Path, *, weights: str | None = None
) -> dict[str, Any]:
    """Python API: write ``out`` and ``out.json``; returns the sidecar dict.

    ``weights``: ``"raw"`` / ``"ema"`` (runs with ``run.ema_decay``); None: the better on validation.
    """
    if fmt in _REMOVED:
        raise ValueError(f"format {fmt!r} is no longer written: {_REMOVED[fmt]}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model, payload = load_model(checkpoint, deploy=True, weights=weights)
    module, example, meta = prepare(cast(ImageVideoNet, model), payload, pathway)
    if fmt == "onnx":
        to_onnx(module, example, out, meta["outputs"])
    else:
        to_pt2(module, example, out)
    meta["format"] = fmt
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    return meta
