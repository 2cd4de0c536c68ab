"""Model registry: ``create_model(name, ...)``, ``list_models()`` and ``unidual models``.

Every constructor argument other than depth / width / heads lives in
``spec["options"]`` so :func:`unidual.checkpoint.build_model` rebuilds any model.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from unidual.models.heads import aux_name
from unidual.models.memory import default_channels_last, set_memory_format
from unidual.models.resnet import DEPTHS, LAYOUTS, ResNet2Plus1d
from unidual.models.zoo import UniDualNet

MODALITIES = ("image", "video")

# name -> (backbone pathways, route model pathway -> backbone pathway, LSTM?, one-line description)
_TABLE: dict[str, tuple[tuple[str, ...], dict[str, str], bool, str]] = {
    "r2d": (("image",), {"image": "image"}, False, "R2D: 2D ResNet (t=1); clips frame by frame, mean over time"),
    "r2plus1d": (("video",), {"video": "video"}, False, "R(2+1)D; images inflated to static clips"),
    "r2d_multitask": (("image",), {"video": "image"}, False, "R2D on frames + temporal mean, one head per task"),
    "r2plus1d_multitask": (("video",), {"video": "video"}, False, "R(2+1)D, one head per task"),
    "r2d_lstm_multitask": (("image",), {"video": "image"}, True, "R2D on frames + 512-unit LSTM, one head per task"),
    "unidual": (("video", "image"), {"image": "image", "video": "video"}, False,
                "UniDual: shared spatial convs, dual point-wise convs, heads on their modality's pathway"),
    "unidual_aux": (("video", "image"), {"image": "image", "video": "video"}, False,
                    "UniDual + auxiliary heads (each task also on the other pathway); deploy() drops them"),
}
_OPTIONS: dict[str, Any] = {
    "frames": 8,              # length of static clips made from images
    "modalities": None,       # {source key: "image"|"video"}; required by unidual / unidual_aux
    "temporal_kernel": 3,     # t of the t×1×1 filters (and of the M_i formula)
    "layout": "vmz",          # "vmz": M_i per conv; "torchvision": 2nd conv reuses the 1st conv's M
    "per_pathway_bn": False,  # every BN per pathway (ablation); default: only BNs after point-wise convs
    "maxpool": False,         # 1×3×3 stride-2 max-pool after the stem (224-px configuration)
    "temporal_strides": True,  # temporal stride 2 in stages 2-4 (video pathway only)
    "lstm_hidden": 512,       # r2d_lstm_multitask only
    "deployed": False,        # unidual_aux only: auxiliary heads dropped
    "bn_eps": 1e-5,           # BatchNorm epsilon; 1e-3 for Caffe2/VMZ-trained weights (docs/models.md)
}


def list_models() -> list[str]:
    return list(_TABLE)


def _check_heads(name: str, heads: Any) -> dict[str, int]:
    if not isinstance(heads, dict) or not heads:
        raise ValueError(f"{name}: heads must be a non-empty dict {{source key: number of classes}}, got {heads!r}")
    out = {}
    for key, n in heads.items():
        if not isinstance(key, str) or not key or "." in key:
            raise ValueError(f"{name}: head name must be a non-empty string without '.', got {key!r}")
        if key.endswith("_aux") and name == "unidual_aux":
            raise ValueError(f"{name}: head name {key!r} may not end in '_aux' (reserved for auxiliary heads)")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name}: head {key!r} needs a positive integer number of classes, got {n!r}")
        out[key] = n
    return out


def _check_modalities(name: str, heads: dict[str, int], modalities: Any) -> dict[str, str] | None:
    if modalities is None:
        if name.startswith("unidual"):
            raise ValueError(f"{name}: modalities={{source key: 'image'|'video'}} is required to attach the heads")
        return None
    if not isinstance(modalities, dict):
        raise ValueError(f"{name}: modalities must be a dict, got {modalities!r}")
    missing = set(heads) - set(modalities)
    if missing:
        raise ValueError(f"{name}: modalities has no entry for head(s) {sorted(missing)}")
    bad = {k: v for k, v in modalities.items() if v not in MODALITIES}
    if bad:
        raise ValueError(f"{name}: modality must be 'image' or 'video', got {bad}")
    return {k: modalities[k] for k in heads}


def _head_pathways(name: str, heads: dict[str, int], modalities: dict[str, str] | None, aux: bool):
    route = _TABLE[name][1]
    if len(route) == 1:
        only = next(iter(route))
        return dict(heads), {k: only for k in heads}
    assert modalities is not None
    classes, where = dict(heads), dict(modalities)
    if aux:
        for key, n in heads.items():
            classes[aux_name(key)] = n
            where[aux_name(key)] = "video" if modalities[key] == "image" else "image"
    return classes, where


def create_model(
    name: str,
    *,
    depth: int = 34,
    width: float = 1.0,
    heads: dict[str, int],
    channels_last: bool | None = None,
    **options: Any,
) -> UniDualNet:
    """Build one of :func:`list_models` (see docs/models.md for every option).

    ``channels_last`` (not part of the spec: it changes strides, never values) stores the conv
    weights channels-last for speed; None follows ``$UNIDUAL_CHANNELS_LAST`` (default on),
    see :mod:`unidual.models.memory`.
    """
    if name not in _TABLE:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}")
    if isinstance(depth, bool) or depth not in DEPTHS:
        raise ValueError(f"{name}: unsupported depth {depth!r}; choose one of {sorted(DEPTHS)}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"{name}: width must be a positive number, got {width!r}")
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}")
    heads = _check_heads(name, heads)
    opts = {**_OPTIONS, **options}
    frames = opts["frames"]
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"{name}: frames must be an integer >= 1, got {frames!r}")
    if opts["layout"] not in LAYOUTS:
        raise ValueError(f"{name}: layout must be one of {LAYOUTS}, got {opts['layout']!r}")
    if isinstance(opts["bn_eps"], bool) or not isinstance(opts["bn_eps"], (int, float)) or not opts["bn_eps"] > 0:
        raise ValueError(f"{name}: bn_eps must be a positive number, got {opts['bn_eps']!r}")
    modalities = _check_modalities(name, heads, opts["modalities"])
    pathways, route, lstm, _ = _TABLE[name]
    aux = name == "unidual_aux" and not opts["deployed"]
    classes, where = _head_pathways(name, heads, modalities, aux)

    spec_options = {"frames": frames, "modalities": modalities}
    spec_options.update({k: opts[k] for k in ("temporal_kernel", "layout", "per_pathway_bn", "maxpool", "temporal_strides")})
    spec_options["bn_eps"] = float(opts["bn_eps"])
    if lstm:
        spec_options["lstm_hidden"] = opts["lstm_hidden"]
    if name == "unidual_aux":
        spec_options["deployed"] = bool(opts["deployed"])
    spec = {"name": name, "depth": depth, "width": float(width), "heads": dict(heads), "options": spec_options}

    backbone = ResNet2Plus1d(
        depth,
        pathways=pathways,
        width=width,
        t=opts["temporal_kernel"],
        layout=opts["layout"],
        per_pathway_bn=opts["per_pathway_bn"],
        maxpool=opts["maxpool"],
        temporal_strides=opts["temporal_strides"],
        bn_eps=float(opts["bn_eps"]),
    )
    model = UniDualNet(
        spec, backbone, route, classes, where, frames=frames, lstm_hidden=opts["lstm_hidden"] if lstm else None
    )
    return set_memory_format(model, default_channels_last() if channels_last is None else bool(channels_last))


def describe(name: str) -> str:
    return _TABLE[name][3]


# -- `unidual models` ----------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object {name: description}")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "json", False):
        print(json.dumps({n: describe(n) for n in list_models()}, indent=2))
        return 0
    for n in list_models():
        print(f"{n:<20} {describe(n)}")
    print(f"depths: {sorted(DEPTHS)}  (basic <= 34, bottleneck >= 50); see `unidual info NAME`")
    return 0

