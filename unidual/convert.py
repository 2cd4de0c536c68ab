"""``unidual convert WEIGHTS.pth --out CKPT.pt``: published R(2+1)D weights -> a unidual checkpoint.

Reads a torchvision-layout R(2+1)D ``VideoResNet`` state_dict (torchvision's ``r2plus1d_18``, the
ig65m-pytorch R(2+1)D-34 IG65M / IG65M→Kinetics files, ...) with ``torch.load(weights_only=True)``
(a pickle that would run code is refused), maps it strictly with
:func:`unidual.models.surgery.from_torchvision` and writes an ordinary checkpoint: ``predict`` and
``eval`` use it directly, ``train`` starts from it (``finetune.checkpoint``; docs/models.md).

A state_dict carries no label names and no preprocessing, so the checkpoint records what users of
these weights expect (torchvision's video recipe): head ``kinetics``, test clips resized to 128×171
and centre-cropped to 112, the Kinetics mean/std, 10 uniform clips of ``--frames`` frames; class
names from ``--classes`` (else ``"0"``, ``"1"``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unidual import checkpoint
from unidual.checkpoint import save_checkpoint
from unidual.models.surgery import from_torchvision

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
    """A JSON list or a text file with one class name a line; must name exactly ``count`` classes."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"{path}: class-name file not found")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConvertError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(names, list):
            raise ConvertError(f"{path}: expected a JSON list of class names")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != count:
        raise ConvertError(f"{path}: {len(names)} class names, but the weights have {count} classes")
    return [str(n) for n in names]


def test_source(key: str, frames: int, clips: int) -> dict[str, Any]:
    """The source spec (without ``root``: eval's ``--data`` names it) holding the test recipe."""
    return {
        "key": key,
        "modality": "video",
        "format": "folder",
        "clip": {"frames": frames, "num_clips": clips},
        "transform": {"protocol": "A", "mean": list(KINETICS_MEAN), "std": list(KINETICS_STD)},
    }


def convert(
    weights: str | Path,
    out: str | Path,
    *,
    head: str = "kinetics",
    frames: int = 16,
    clips: int = 10,
    classes: str | Path | None = None,
    bn_eps: float | None = None,
) -> dict[str, Any]:
    """Write the checkpoint; return its ``model_spec``."""
    state = read_state_dict(weights)
    try:
        model = from_torchvision(state, head=head, frames=frames, bn_eps=bn_eps)
    except ValueError as exc:
        raise ConvertError(f"{weights}: {exc}") from exc
    count = model.spec["heads"][head]
    names = read_class_names(classes, count) if classes else [str(i) for i in range(count)]
    save_checkpoint(
        out,
        {
            "model": model.state_dict(),
            "model_spec": model.spec,
            "sources": {head: {"modality": "video", "classes": names}},
            "config": {"sources": [test_source(head, frames, clips)]},
            "converted_from": str(weights),
        },
    )
    return model.spec
