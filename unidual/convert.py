"""``unidual convert NAME|URL|PATH --out CKPT.pt``: published R(2+1)D weights -> a unidual checkpoint.

The weights come through :func:`unidual.weights.fetch_weights` (a registry name, a URL with a
known hash, or a local file; downloads cached and hash-checked). The file is a torchvision-layout
R(2+1)D ``VideoResNet`` state_dict (torchvision's ``r2plus1d_18``, the ig65m-pytorch R(2+1)D-34
IG65M / IG65M→Kinetics files, ...), read with ``torch.load(weights_only=True)`` (a pickle that
would run code is refused), mapped strictly with
:func:`unidual.models.torchvision_keys.from_torchvision` and written as an ordinary checkpoint:
``predict`` and ``eval`` use it directly, ``train`` starts from it (``finetune.checkpoint``;
docs/models.md). :func:`pretrained_model` builds any model of the table from such weights
instead (``unidual.create_model(..., weights=NAME)``).

A state_dict carries no label names and no preprocessing, so the checkpoint records what users of
these weights expect (torchvision's video recipe): head ``kinetics`` (``ig65m`` for the IG-65M
ones), test clips resized to 128×171 and centre-cropped to 112, the Kinetics mean/std, 10 uniform
clips of the entry's frames (else ``--frames``); class names from ``--classes`` (else ``"0"``, ``"1"``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unidual import checkpoint
from unidual.checkpoint import save_checkpoint
from unidual.data.errors import DataError
from unidual.data.labels import read_class_names as read_classes
from unidual.models import ImageVideoNet, create_model, get_model_def
from unidual.models.surgery import architecture_mismatch, load_backbone
from unidual.models.torchvision_keys import from_torchvision
from unidual.weights import Fetched, fetch_weights

# torchvision's (and ig65m-pytorch's) normalisation for its video models, on [0, 1] pixels
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
WRAPPERS = ("state_dict", "model")  # {"state_dict": {...}} as Lightning / many training scripts save it


class ConvertError(ValueError):
    """The weights file cannot be read or is not a torchvision-layout R(2+1)D; names file and problem."""


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a ``.pth``: a plain state_dict, or one wrapped in ``state_dict``/``model``; a DDP
    ``module.`` prefix is dropped."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"{path}: no such weights file")
    try:
        checkpoint.check_inflation(path)  # a zip bomb is refused before torch.load inflates it
        data = torch.load(path, map_location="cpu", weights_only=True)
    except checkpoint.CheckpointError as exc:
        raise ConvertError(str(exc)) from None
    except Exception as exc:  # truncated files, pickles that would execute code
        raise ConvertError(f"{path}: cannot be loaded as plain tensors ({exc})") from exc
    if isinstance(data, Mapping) and not any(isinstance(v, Tensor) for v in data.values()):
        data = next((data[w] for w in WRAPPERS if isinstance(data.get(w), Mapping)), data)
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, Tensor) for v in data.values()):
        raise ConvertError(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in data.items()}


def read_class_names(path: str | Path, count: int) -> list[str]:
    """``--classes`` through the data package's one class-name reader; must name exactly ``count`` classes."""
    try:
        names = read_classes(str(path))
    except DataError as exc:
        raise ConvertError(str(exc)) from None
    if len(names) != count:
        raise ConvertError(f"{path}: {len(names)} class names, but the weights have {count} classes")
    return names


def test_source(key: str, frames: int, clips: int) -> dict[str, Any]:
    """The source spec (without ``root``: eval's ``--data`` names it) holding the test recipe."""
    return {
        "key": key,
        "modality": "video",
        "format": "folder",
        "clip": {"frames": frames, "num_clips": clips},
        "transform": {"protocol": "A", "mean": list(KINETICS_MEAN), "std": list(KINETICS_STD)},
    }


def _source_network(fetched: Fetched, frames: int | None, head: str | None, bn_eps: float | None) -> ImageVideoNet:
    """The fetched file as an ``r2plus1d`` (its classifier as head ``head``), or a ConvertError."""
    entry = fetched.entry
    state = read_state_dict(fetched.path)
    try:
        return from_torchvision(
            state,
            head=head or (entry.head if entry else "kinetics"),
            frames=frames or (entry.frames if entry else 16),
            bn_eps=bn_eps,
        )
    except ValueError as exc:
        raise ConvertError(f"{fetched.path}: {exc}") from exc


def convert(
    weights: str | os.PathLike,
    out: str | Path,
    *,
    sha256: str | None = None,
    head: str | None = None,
    frames: int | None = None,
    clips: int = 10,
    classes: str | Path | None = None,
    bn_eps: float | None = None,
) -> dict[str, Any]:
    """Write the checkpoint; return its ``model_spec``. ``head``/``frames`` default to the registry entry's."""
    fetched = fetch_weights(weights, sha256)
    model = _source_network(fetched, frames, head, bn_eps)
    head = next(iter(model.spec["heads"]))
    count = model.spec["heads"][head]
    names = read_class_names(classes, count) if classes else [str(i) for i in range(count)]
    save_checkpoint(
        out,
        {
            "model": model.state_dict(),
            "model_spec": model.spec,
            "sources": {head: {"modality": "video", "classes": names}},
            "config": {"sources": [test_source(head, model.frames, clips)]},
            "converted_from": {"weights": str(weights), "file": str(fetched.path), "sha256": fetched.sha256},
        },
    )
    return model.spec


def pretrained_model(
    name: str,
    weights: str | os.PathLike,
    *,
    sha256: str | None = None,
    depth: int | None = None,
    width: float = 1.0,
    heads: dict[str, int] | None = None,
    channels_last: bool | None = None,
    **options: Any,
) -> ImageVideoNet:
    """Model ``name`` started from published weights, as ``finetune.convert: auto`` would start it.

    Depth, mid-channel layout and BatchNorm eps come from the weights (``depth`` / ``bn_eps``, if
    given, must agree or override as in ``unidual convert``). The backbone is copied with the
    model's own conversion (``pretrained_convert`` in the model table: R2D and UniDual's image
    pathway get the deflated filters). Without ``heads`` the weights' classifier is kept, which
    only a video-only model (``r2plus1d``, ``r2plus1d_multitask``) can hold.
    """
    fetched = fetch_weights(weights, sha256)
    source = _source_network(fetched, options.get("frames"), None, options.pop("bn_eps", None))
    src = source.spec
    if depth is not None and depth != src["depth"]:
        raise ConvertError(f"{weights}: R(2+1)D-{src['depth']} weights, but depth={depth} was asked for")
    definition = get_model_def(name)
    keep_classifier = heads is None
    if keep_classifier and dict(definition.route) != {"video": "video"}:
        raise ConvertError(
            f"{name}: give heads={{source key: classes}}; only r2plus1d models keep the weights' classifier"
        )
    options.setdefault("frames", source.frames)
    model = create_model(
        name,
        depth=src["depth"],
        width=width,
        heads=dict(src["heads"]) if heads is None else heads,
        channels_last=channels_last,
        layout=src["options"]["layout"],
        bn_eps=src["options"]["bn_eps"],
        **options,
    )
    differ = architecture_mismatch(src, model.spec)
    if differ:
        raise ConvertError(f"{weights}: the weights do not fit {name} as configured ({'; '.join(differ)})")
    load_backbone(model, source.state_dict(), convert=definition.pretrained_convert, own_pathway_first=True)
    if keep_classifier:
        model.heads.load_state_dict(source.heads.state_dict())
    return model
