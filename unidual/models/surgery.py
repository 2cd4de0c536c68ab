"""Weight surgery between R2D, R(2+1)D and UniDual weights.

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
* :func:`architecture_mismatch` -- the backbone settings in which two model specs differ.

Loading torchvision-layout R(2+1)D weights lives in :mod:`unidual.models.torchvision_keys`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from torch import Tensor, nn

from unidual.models.network import ImageVideoNet
from unidual.models.registry import COMMON_OPTIONS, create_model
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
    heads = {n: cast(nn.Linear, model.heads[n]).out_features for n in model.heads.on(pathway)}
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
    "inflate",
    "load_backbone",
]
