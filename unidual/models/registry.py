"""``create_model(name, ...)`` and ``list_models()``: build any model of :mod:`unidual.models.table`.

Every constructor argument other than depth / width / heads lives in
``spec["options"]`` so :func:`unidual.checkpoint.build_model` rebuilds any model.
"""

from __future__ import annotations

from typing import Any

from unidual.models.heads import head_layout
from unidual.models.memory import default_channels_last, set_memory_format
from unidual.models.network import ImageVideoNet
from unidual.models.resnet import DEPTHS, LAYOUTS, ResNet2Plus1d
from unidual.models.table import ModelDef, get_model_def, model_names
from unidual.pathways import MODALITIES, is_aux_name

# options every model takes, with their defaults (a ModelDef adds its own in ``options``)
COMMON_OPTIONS: dict[str, Any] = {
    "frames": 8,  # length of static clips made from images
    "modalities": None,  # {source key: "image"|"video"}; required where heads sit by modality
    "temporal_kernel": 3,  # t of the t×1×1 filters (and of the M_i formula)
    "layout": "vmz",  # "vmz": M_i per conv; "torchvision": 2nd conv reuses the 1st conv's M
    "per_pathway_bn": False,  # every BN per pathway (ablation); default: only BNs after point-wise convs
    # BNs after shared convs: shared scale/shift, running statistics per pathway (chosen by the ablation in
    # docs/results.md: better on both tasks; False = one running average mixed from both pathways)
    "pathway_bn_stats": True,
    "image_init": "independent",  # image 1×1 filters: "independent" random init, or "deflate"d video filters
    "maxpool": False,  # 1×3×3 stride-2 max-pool after the stem (224-px configuration)
    "temporal_strides": True,  # temporal stride 2 in stages 2-4 (video pathway only)
    "bn_eps": 1e-5,  # BatchNorm epsilon; 1e-3 for Caffe2/VMZ-trained weights (docs/models.md)
}
_BACKBONE_OPTIONS = (
    "temporal_kernel",
    "layout",
    "per_pathway_bn",
    "pathway_bn_stats",
    "image_init",
    "maxpool",
    "temporal_strides",
)


def list_models() -> list[str]:
    return model_names()


def describe(name: str) -> str:
    return get_model_def(name).description


def _check_heads(d: ModelDef, heads: Any) -> dict[str, int]:
    if not isinstance(heads, dict) or not heads:
        raise ValueError(f"{d.name}: heads must be a non-empty dict {{source key: number of classes}}, got {heads!r}")
    out = {}
    for key, n in heads.items():
        if not isinstance(key, str) or not key or "." in key:
            raise ValueError(f"{d.name}: head name must be a non-empty string without '.', got {key!r}")
        if d.aux_heads and is_aux_name(key):
            raise ValueError(f"{d.name}: head name {key!r} may not end in '_aux' (reserved for auxiliary heads)")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{d.name}: head {key!r} needs a positive integer number of classes, got {n!r}")
        out[key] = n
    return out


def _check_modalities(d: ModelDef, heads: dict[str, int], modalities: Any) -> dict[str, str] | None:
    if modalities is None:
        if d.heads_by_modality:
            raise ValueError(f"{d.name}: modalities={{source key: 'image'|'video'}} is required to attach the heads")
        return None
    if not isinstance(modalities, dict):
        raise ValueError(f"{d.name}: modalities must be a dict, got {modalities!r}")
    missing = set(heads) - set(modalities)
    if missing:
        raise ValueError(f"{d.name}: modalities has no entry for head(s) {sorted(missing)}")
    bad = {k: v for k, v in modalities.items() if v not in MODALITIES}
    if bad:
        raise ValueError(f"{d.name}: modality must be 'image' or 'video', got {bad}")
    return {k: modalities[k] for k in heads}


def create_model(
    name: str,
    *,
    depth: int = 34,
    width: float = 1.0,
    heads: dict[str, int],
    channels_last: bool | None = None,
    dropout: float = 0.0,
    zero_init_residual: bool = False,
    **options: Any,
) -> ImageVideoNet:
    """Build one of :func:`list_models` (see docs/models.md for every option).

    ``channels_last`` (not part of the spec: it changes strides, never values) stores the conv
    weights channels-last for speed; None follows ``$UNIDUAL_CHANNELS_LAST`` (default on),
    see :mod:`unidual.models.memory`.

    ``dropout`` (before every head) and ``zero_init_residual`` (each residual block's last BN γ
    starts at 0) are training-recipe choices: like ``channels_last`` they are not in the spec, since
    neither changes a tensor's shape nor what a trained model computes in eval mode.
    """
    d = get_model_def(name)
    if isinstance(depth, bool) or depth not in DEPTHS:
        raise ValueError(f"{name}: unsupported depth {depth!r}; choose one of {sorted(DEPTHS)}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"{name}: width must be a positive number, got {width!r}")
    known = {**COMMON_OPTIONS, **d.options}
    unknown = set(options) - set(known)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    heads = _check_heads(d, heads)
    opts = {**known, **options}
    frames = opts["frames"]
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"{name}: frames must be an integer >= 1, got {frames!r}")
    if opts["layout"] not in LAYOUTS:
        raise ValueError(f"{name}: layout must be one of {LAYOUTS}, got {opts['layout']!r}")
    if isinstance(opts["bn_eps"], bool) or not isinstance(opts["bn_eps"], (int, float)) or not opts["bn_eps"] > 0:
        raise ValueError(f"{name}: bn_eps must be a positive number, got {opts['bn_eps']!r}")
    modalities = _check_modalities(d, heads, opts["modalities"])
    with_aux = d.aux_heads and not opts.get("deployed", False)
    classes, where = head_layout(d.pathways, heads, modalities, with_aux)

    spec_options = {"frames": frames, "modalities": modalities, **{k: opts[k] for k in _BACKBONE_OPTIONS}}
    spec_options["bn_eps"] = float(opts["bn_eps"])
    spec_options.update({k: opts[k] for k in d.options})
    if "deployed" in spec_options:
        spec_options["deployed"] = bool(spec_options["deployed"])
    spec = {"name": name, "depth": depth, "width": float(width), "heads": dict(heads), "options": spec_options}

    backbone = ResNet2Plus1d(
        depth,
        pathways=d.backbone_pathways,
        width=width,
        t=opts["temporal_kernel"],
        layout=opts["layout"],
        per_pathway_bn=opts["per_pathway_bn"],
        pathway_bn_stats=opts["pathway_bn_stats"],
        image_init=opts["image_init"],
        maxpool=opts["maxpool"],
        temporal_strides=opts["temporal_strides"],
        bn_eps=float(opts["bn_eps"]),
        zero_init_residual=bool(zero_init_residual),
    )
    lstm_hidden = opts["lstm_hidden"] if d.temporal == "lstm" else None
    model = ImageVideoNet(
        spec, d, backbone, classes, where, frames=frames, lstm_hidden=lstm_hidden, dropout=float(dropout)
    )
    return set_memory_format(model, default_channels_last() if channels_last is None else bool(channels_last))
