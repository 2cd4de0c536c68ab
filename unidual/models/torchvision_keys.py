"""torchvision-layout R(2+1)D ``VideoResNet`` weights -> unidual models, key by key.

torchvision's ``r2plus1d_18`` and the ig65m-pytorch R(2+1)D-34 files share torchvision's
``VideoResNet`` key names (``stem.0``, ``layer2.0.conv2.0.0``, ``fc``); this module maps them onto
the (2+1)D convs of :mod:`unidual.models.resnet`, reads depth / mid-channel layout from the tensor
shapes, and loads strictly, so a file that is not such a network fails on its first stray key.

* :func:`torchvision_architecture` -- (depth, layout) of a state_dict;
* :func:`from_torchvision` -- the state_dict as an ``r2plus1d`` with identical outputs;
* :func:`unidual_from_torchvision` -- a UniDual(-Aux) started from it (image filters deflated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from unidual.models.layers import midplanes
from unidual.models.network import ImageVideoNet
from unidual.models.registry import create_model
from unidual.models.resnet import DEPTHS, STEM_MID
from unidual.models.surgery import load_backbone

_TV_BLOCK = {
    "conv1.0.0": "conv1.spatial",
    "conv1.0.1": "conv1.norm",
    "conv1.0.3": "conv1.pointwise",
    "conv1.1": "bn1",
    "conv2.0.0": "conv2.spatial",
    "conv2.0.1": "conv2.norm",
    "conv2.0.3": "conv2.pointwise",
    "conv2.1": "bn2",
    "downsample.0": "shortcut.conv",
    "downsample.1": "shortcut.norm",
}
_TV_STEM = {
    "stem.0": "stem.conv.spatial",
    "stem.1": "stem.conv.norm",
    "stem.3": "stem.conv.pointwise",
    "stem.4": "stem.bn",
}


# torchvision's VideoResNet has no per-conv widths and no eps in its state_dict, so the layout is
# read from the shape of layer2.0.conv2's spatial conv and the eps follows the layout:
# Caffe2/VMZ-trained weights (ig65m-pytorch) use 1e-3, torchvision's own use PyTorch's 1e-5.
TV_EPS = {"torchvision": 1e-5, "vmz": 1e-3}


def _tv_key(key: str, head: str) -> str:
    if key.startswith("fc."):
        return f"heads.{head}.{key[3:]}"
    for old, new in _TV_STEM.items():
        if key.startswith(old + "."):
            return "backbone." + new + key[len(old) :]
    m = re.match(r"(layer\d\.\d+)\.(.+)\.(\w+)$", key)
    if m and m.group(2) in _TV_BLOCK:
        return f"backbone.{m.group(1)}.{_TV_BLOCK[m.group(2)]}.{m.group(3)}"
    raise ValueError(f"{key}: not a key of a torchvision R(2+1)D VideoResNet (r3d / mc3 models are not supported)")


def torchvision_architecture(state_dict: Mapping[str, Tensor]) -> tuple[int, str]:
    """(depth, layout) of a torchvision-layout R(2+1)D ``VideoResNet`` state_dict.

    Depth from the number of blocks per stage; layout ``"torchvision"`` when layer2's first
    block reuses its first conv's mid-channels in the second conv, ``"vmz"`` when that conv has
    its own (the Caffe2 mid-channel fix of the ig65m-pytorch R(2+1)D-34).
    """
    for key in ("fc.weight", "stem.0.weight", "stem.3.weight", "layer2.0.conv2.0.0.weight"):
        if key not in state_dict:
            raise ValueError(f"not a torchvision R(2+1)D VideoResNet state_dict: it has no {key!r}")
    counts = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in state_dict if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        counts.append(len(blocks))
    depth = next((d for d, (kind, c) in DEPTHS.items() if kind == "basic" and c == tuple(counts)), None)
    if depth is None:
        raise ValueError(
            f"blocks per stage {tuple(counts)} match no basic-block R(2+1)D depth "
            f"({ {d: c for d, (k, c) in DEPTHS.items() if k == 'basic'} })"
        )
    stem = tuple(state_dict["stem.3.weight"].shape[:2])
    if stem != (64, STEM_MID):
        raise ValueError(
            f"stem.3.weight has shape {tuple(state_dict['stem.3.weight'].shape)}: only the "
            f"full-width network (64 stem channels, {STEM_MID} mid-channels) is supported"
        )
    mid = int(state_dict["layer2.0.conv2.0.0.weight"].shape[0])
    layouts = {midplanes(64, 128): "torchvision", midplanes(128, 128): "vmz"}
    if mid not in layouts:
        raise ValueError(
            f"layer2.0.conv2.0.0.weight has {mid} mid-channels: neither torchvision's "
            f"({midplanes(64, 128)}) nor the Caffe2/VMZ layout's ({midplanes(128, 128)})"
        )
    return depth, layouts[mid]


def from_torchvision(
    state_dict: Mapping[str, Tensor],
    *,
    head: str = "kinetics",
    frames: int = 16,
    bn_eps: float | None = None,
) -> ImageVideoNet:
    """A torchvision-layout R(2+1)D ``VideoResNet`` state_dict -> ``r2plus1d``, loaded strictly.

    Depth (18 / 34 / any basic-block depth) and mid-channel layout (torchvision's, or the
    per-conv Caffe2/VMZ one of the ig65m weights) are read from the tensors; ``bn_eps`` None
    follows the layout (:data:`TV_EPS`), since a state_dict does not store it. The classifier
    becomes head ``head``; outputs equal the source network's.
    """
    depth, layout = torchvision_architecture(state_dict)
    eps = TV_EPS[layout] if bn_eps is None else bn_eps
    classes = int(state_dict["fc.weight"].shape[0])
    model = create_model("r2plus1d", depth=depth, heads={head: classes}, layout=layout, frames=frames, bn_eps=eps)
    names = {_tv_key(k, head): k for k in state_dict}
    mapped = {ours: state_dict[theirs] for ours, theirs in names.items()}
    target = model.state_dict()
    for key, value in target.items():  # BN step counters change no output; some exports drop them
        if key.endswith("num_batches_tracked"):
            mapped.setdefault(key, value)
    problems = [f"missing {_tv_name(k, head)}" for k in target if k not in mapped]
    problems += [
        f"{names[k]} has shape {tuple(v.shape)}, R(2+1)D-{depth} needs {tuple(target[k].shape)}"
        for k, v in mapped.items()
        if k in target and v.shape != target[k].shape
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"weights do not fit R(2+1)D-{depth} ({layout} layout): {'; '.join(problems[:3])}{more}")
    model.load_state_dict(mapped, strict=True)  # every key mapped, none left over: _tv_key raised on strays
    return model


def _tv_name(key: str, head: str) -> str:
    """Our key -> the torchvision key it is loaded from (for error messages)."""
    if key.startswith(f"heads.{head}."):
        return "fc." + key[len(f"heads.{head}.") :]
    key = key[len("backbone.") :]
    for table in (_TV_STEM, _TV_BLOCK):
        for theirs, ours in table.items():
            if f".{ours}." in f".{key}":
                return f".{key}".replace(f".{ours}.", f".{theirs}.", 1)[1:]
    return key


def unidual_from_torchvision(
    state_dict: Mapping[str, Tensor],
    *,
    name: str = "unidual_aux",
    heads: dict[str, int],
    modalities: dict[str, str],
    **options: Any,
) -> ImageVideoNet:
    """A UniDual(-Aux) whose video pathway is the torchvision-layout network (any depth/layout
    :func:`from_torchvision` reads) and whose 1×1 image filters are its deflated temporal filters;
    heads are fresh."""
    source = from_torchvision(state_dict, bn_eps=options.pop("bn_eps", None))
    spec = source.spec
    model = create_model(
        name,
        depth=spec["depth"],
        heads=heads,
        modalities=modalities,
        layout=spec["options"]["layout"],
        bn_eps=spec["options"]["bn_eps"],
        **options,
    )
    load_backbone(model, source.state_dict(), convert="deflate")
    return model


__all__ = ["TV_EPS", "from_torchvision", "torchvision_architecture", "unidual_from_torchvision"]
