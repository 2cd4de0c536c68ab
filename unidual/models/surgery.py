"""Weight surgery between R2D, R(2+1)D, UniDual and torchvision-layout R(2+1)D weights.

* :func:`deflate` -- t×1×1 -> 1×1 by summing over t (the paper's R2D-finetuned).
  On a *static* clip a t×1×1 conv then gives the deflated 1×1 conv's output
  exactly -- except on the first and last t//2 frames, where the zero temporal
  padding hides taps that the sum counted. Each temporal conv moves that
  border effect one frame inwards, so a deep network only agrees in the
  middle of a long clip.
* :func:`inflate` -- 1×1 -> t×1×1. Default ``"center"``: the 1×1 weight goes to
  the centre tap, the others are zero, so the inflated network on *any* clip
  equals the 2D network run frame by frame (exactly, borders included).
  ``"mean"`` spreads it as w/t over the taps (I3D-style, sum preserving):
  equal on static clips away from the borders only.
* :func:`export_pathway` -- one pathway of a UniDual(-Aux) model as a standalone
  R2D (``"image"``) or R(2+1)D (``"video"``) with identical outputs.
* :func:`load_backbone` -- copy backbone weights between any two models of the
  zoo (same depth / width / layout), converting point-wise filters on request.
* :func:`from_torchvision` / :func:`unidual_from_torchvision` -- load a
  torchvision-layout R(2+1)D ``VideoResNet`` state_dict (r2plus1d_18, the ig65m
  R(2+1)D-34; strictly) and start UniDual from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from unidual.models.layers import midplanes
from unidual.models.network import ImageVideoNet
from unidual.models.registry import COMMON_OPTIONS, create_model
from unidual.models.resnet import DEPTHS, STEM_MID
from unidual.pathways import MODALITIES

INFLATE_MODES = ("center", "mean")
_SEGMENT = re.compile(r"\.(video|image)(?=\.)")
# keys that belong to the top of a network (fresh when transferring a backbone)
TOP_PREFIXES = ("heads.", "temporal.")


def deflate(weight: Tensor) -> Tensor:
    """(O, I, t, 1, 1) temporal filters -> (O, I, 1, 1, 1) by summing over t."""
    _check_pointwise(weight)
    return weight.sum(dim=2, keepdim=True)


def inflate(weight: Tensor, t: int, mode: str = "center") -> Tensor:
    """(O, I, 1, 1, 1) filters -> (O, I, t, 1, 1); see the module docstring for ``mode``."""
    _check_pointwise(weight)
    if weight.shape[2] != 1:
        raise ValueError(f"inflate needs 1×1 filters, got temporal size {weight.shape[2]}")
    if mode not in INFLATE_MODES:
        raise ValueError(f"inflate mode must be one of {INFLATE_MODES}, got {mode!r}")
    if mode == "mean":
        return weight.expand(-1, -1, t, -1, -1) / t
    out = weight.new_zeros(weight.shape[0], weight.shape[1], t, 1, 1)
    out[:, :, t // 2] = weight[:, :, 0]
    return out


def _check_pointwise(weight: Tensor) -> None:
    if weight.dim() != 5 or weight.shape[3:] != (1, 1):
        raise ValueError(f"expected point-wise conv weights (O, I, t, 1, 1), got shape {tuple(weight.shape)}")


def _split(key: str) -> tuple[str, str | None]:
    """'a.pointwise.video.weight' -> ('a.pointwise.weight', 'video'); shared keys -> (key, None)."""
    m = _SEGMENT.search(key)
    if m is None:
        return key, None
    return key[: m.start()] + key[m.end() :], m.group(1)


def _converted(key: str, src: Tensor, dst: Tensor, convert: str | None, mode: str) -> Tensor:
    if src.shape == dst.shape:
        return src
    is_pw = src.dim() == 5 and src.shape[:2] == dst.shape[:2] and src.shape[3:] == dst.shape[3:] == (1, 1)
    if is_pw and convert == "deflate" and dst.shape[2] == 1:
        return deflate(src)
    if is_pw and convert == "inflate" and src.shape[2] == 1:
        return inflate(src, dst.shape[2], mode)
    hint = "" if convert else " (pass convert='deflate' or 'inflate' to convert point-wise filters)"
    raise ValueError(f"{key}: source shape {tuple(src.shape)} does not fit {tuple(dst.shape)}{hint}")


def load_backbone(
    dst: ImageVideoNet,
    src_state_dict: Mapping[str, Tensor],
    convert: str | None = None,
    *,
    inflate_mode: str = "center",
    own_pathway_first: bool = False,
) -> list[str]:
    """Copy every backbone tensor of ``src_state_dict`` into ``dst``; return the keys left untouched.

    Pathway branches are matched by name: a single-pathway source feeds both
    branches of a UniDual destination, a UniDual source feeds a single-pathway
    destination from the same pathway -- or from the other one when
    converting (``"deflate"``: video -> image filters; ``"inflate"``: image ->
    video). With ``own_pathway_first`` a branch takes the source's tensor of the
    same pathway when there is one and converts only what is missing (the
    model table's ``pretrained_convert``: UniDual -> UniDual copies both
    pathways, R(2+1)D -> UniDual deflates into the image pathway). Heads (and
    the LSTM) are never copied: the returned missing keys are exactly those,
    and anything else missing raises ``ValueError``.
    """
    if convert not in (None, "deflate", "inflate"):
        raise ValueError(f"convert must be None, 'deflate' or 'inflate', got {convert!r}")
    source: dict[tuple[str, str | None], Tensor] = {}
    for key, value in src_state_dict.items():
        if not key.startswith(TOP_PREFIXES):
            source[_split(key)] = value
    dst_pathway = dst.backbone.pathways[0] if len(dst.backbone.pathways) == 1 else None
    wanted_from = {None: None, "deflate": "video", "inflate": "image"}[convert]

    new_state, missing = {}, []
    for key, target in dst.state_dict().items():
        if key.startswith(TOP_PREFIXES):
            missing.append(key)
            continue
        base, pathway = _split(key)
        prefer = pathway or dst_pathway
        if convert and not own_pathway_first:
            order = [(base, wanted_from), (base, prefer), (base, None)]
        else:
            order = [(base, prefer), (base, None), (base, wanted_from)]
        found = next((source[c] for c in order if c in source), None)
        if found is None:
            missing.append(key)
            continue
        new_state[key] = _converted(key, found, target, convert, inflate_mode)
    bad = [k for k in missing if not k.startswith(TOP_PREFIXES)]
    if bad:
        raise ValueError(f"source state_dict lacks {len(bad)} backbone tensor(s), e.g. {bad[:3]}")
    dst.load_state_dict(new_state, strict=False)
    return missing


def export_pathway(model: ImageVideoNet, pathway: str) -> ImageVideoNet:
    """A standalone R2D ("image") or R(2+1)D ("video") equal to ``model``'s pathway, heads included."""
    if pathway not in MODALITIES:
        raise ValueError(f"pathway must be 'image' or 'video', got {pathway!r}")
    if model.backbone.pathways != ("video", "image"):
        raise ValueError(f"export_pathway needs a unidual / unidual_aux model, got {model.name!r}")
    spec = model.spec
    heads = {n: model.heads[n].out_features for n in model.heads.on(pathway)}
    options = {k: v for k, v in spec["options"].items() if k not in ("modalities", "deployed", "per_pathway_bn")}
    name = "r2d" if pathway == "image" else "r2plus1d"
    out = create_model(name, depth=spec["depth"], width=spec["width"], heads=heads, **options)
    state = {}
    for key, value in model.state_dict().items():
        base, branch = _split(key)
        if branch in (None, pathway) and base in out.state_dict():
            state[base] = value
    out.load_state_dict(state)  # strict: every tensor of the exported network is accounted for
    return out.train(model.training)


# -- torchvision ------------------------------------------------------------
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


# options that change what the same backbone tensors compute (and depth / width, for a clear message)
ARCHITECTURE_OPTIONS = ("layout", "temporal_kernel", "bn_eps", "maxpool")


def architecture_mismatch(src_spec: Mapping[str, Any], dst_spec: Mapping[str, Any]) -> list[str]:
    """``"key: source X, model Y"`` for every backbone setting where two model specs differ.

    Copying tensors between such models would either fail on a shape or -- for ``bn_eps`` and
    ``maxpool``, which no tensor records -- silently compute something else.
    """
    out = [
        f"{k}: source {src_spec[k]!r}, model {dst_spec[k]!r}"
        for k in ("depth", "width")
        if src_spec.get(k) != dst_spec.get(k)
    ]
    src_opts, dst_opts = src_spec.get("options", {}), dst_spec.get("options", {})
    for key in ARCHITECTURE_OPTIONS:
        a, b = src_opts.get(key, COMMON_OPTIONS[key]), dst_opts.get(key, COMMON_OPTIONS[key])
        if a != b:
            out.append(f"model.options.{key}: source {a!r}, model {b!r}")
    return out


__all__ = [
    "architecture_mismatch",
    "deflate",
    "export_pathway",
    "from_torchvision",
    "inflate",
    "load_backbone",
    "torchvision_architecture",
    "unidual_from_torchvision",
]
