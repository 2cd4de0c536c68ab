"""Exact parameter counts and compute (multiply-adds) of a model.

Compute is *measured*: forward hooks on every convolution, linear layer and
LSTM record the multiply-adds of the call that actually ran (so the image
pathway's 2D convs, temporal strides and the inflation of images are all
accounted for). Convention: 1 MAC = one multiply + one add; GFLOPs ≈ 2 × GMACs.
torchvision's "40.5 GFLOPS" for r2plus1d_18 at 16×112×112 are multiply-adds in
this sense. BatchNorm, ReLU, pooling and additions are not counted.
The forward runs on the ``meta`` device (shapes only), so even R(2+1)D-152
is reported instantly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd

from unidual.models.network import ImageVideoNet
from unidual.models.surgery import _split

CONVENTION = "multiply-adds (1 MAC = 1 multiply + 1 add; GFLOPs ~ 2 x GMACs); conv, linear and LSTM layers"
DEFAULT_HEADS = "imagenet=1000:image,kinetics=400:video"


def count_macs(model: nn.Module, x: Tensor, pathway: str | None = None) -> int:
    """Multiply-adds of one forward of ``model(x, pathway=...)``, measured with forward hooks."""
    total = 0

    def conv_hook(m: _ConvNd, _inp: tuple, out: Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

    def linear_hook(m: nn.Linear, _inp: tuple, out: Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    def lstm_hook(m: nn.LSTM, inp: tuple, _out: Any) -> None:
        nonlocal total
        x_in = inp[0]
        steps = x_in.shape[0] * x_in.shape[1]  # batch × time
        gates = 4 * m.hidden_size
        total += steps * gates * (m.input_size + m.hidden_size)

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.LSTM):
            handles.append(m.register_forward_hook(lstm_hook))
    try:
        with torch.no_grad():
            model(x, pathway=pathway)
    finally:
        for h in handles:
            h.remove()
    return total


def count_params(model: ImageVideoNet) -> dict[str, Any]:
    """Total parameters, and per pathway: shared tensors + that pathway's branches + its heads."""
    total = sum(p.numel() for p in model.parameters())
    out: dict[str, Any] = {"params": total}
    if len(model.pathways) > 1:
        per = {}
        for pathway in model.pathways:
            n, seen = 0, set()
            # every name of a tensor: a BN with statistics per pathway shares its scale/shift between
            # its two modules, listed (deduplicated) under one pathway's name only
            for key, p in model.named_parameters(remove_duplicate=False):
                if key.startswith("heads."):
                    mine = model.heads.pathway_of[key.split(".")[1]] == pathway
                else:
                    mine = _split(key)[1] in (None, pathway)
                if mine and id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
            per[pathway] = n
        out["params_per_pathway"] = per
    out["params_backbone"] = sum(p.numel() for p in model.backbone.parameters())
    return out


def report(model: ImageVideoNet, *, frames: int, size: int, device: str | torch.device = "meta") -> dict[str, Any]:
    """Parameters and GMACs (one clip of ``frames``×``size``², one ``size``² image) of ``model``."""
    model = model.to(device).eval()
    clip = torch.zeros(1, 3, frames, size, size, device=device)
    image = torch.zeros(1, 3, size, size, device=device)
    info: dict[str, Any] = {
        "name": model.name,
        "depth": model.spec["depth"],
        "width": model.spec["width"],
        "frames": frames,
        "size": size,
        **count_params(model),
        "gmacs": {"clip": count_macs(model, clip) / 1e9, "image": count_macs(model, image) / 1e9},
        "convention": CONVENTION,
    }
    if len(model.pathways) > 1:  # what each pathway costs on each input
        info["gmacs_per_pathway"] = {
            p: {"clip": count_macs(model, clip, p) / 1e9, "image": count_macs(model, image, p) / 1e9}
            for p in model.pathways
        }
    return info


def format_report(info: dict[str, Any]) -> str:
    lines = [
        f"{info['name']}  depth {info['depth']}  width {info['width']:g}  clip {info['frames']}x{info['size']}x{info['size']}",
        f"parameters: {info['params']:,} (backbone {info['params_backbone']:,})",
    ]
    for p, n in info.get("params_per_pathway", {}).items():
        lines.append(f"  {p} pathway: {n:,}")
    g = info["gmacs"]
    lines.append(f"compute: {g['clip']:.3f} GMACs per clip, {g['image']:.3f} GMACs per image")
    for p, d in info.get("gmacs_per_pathway", {}).items():
        lines.append(f"  {p} pathway: {d['clip']:.3f} GMACs per clip, {d['image']:.3f} per image")
    lines.append(f"convention: {info['convention']}")
    return "\n".join(lines)
