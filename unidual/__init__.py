"""UniDual: one network for still images and video clips.

Shared 2D spatial convolutions, dual point-wise convolutions (t×1×1 for clips,
1×1 for images), trained jointly on mixed image and video datasets.

The public API, as torchvision / timm users expect it::

    import unidual
    unidual.list_models("unidual*")                      # ['unidual', 'unidual_aux']
    model = unidual.create_model("unidual_aux", depth=18, heads={"cifar": 10, "ucf": 101},
                                 modalities={"cifar": "image", "ucf": "video"})
    model = unidual.create_model("r2plus1d", weights="r2plus1d_18_kinetics400")  # unidual.list_weights()
    model = unidual.load_model("runs/my-run")            # a run directory or checkpoint file

The heavy modules are imported on first use, so ``import unidual`` stays cheap.
"""

from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import torch

    from unidual.models.network import ImageVideoNet

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "list_weights", "load_model"]


def create_model(
    name: str,
    *,
    depth: int | None = None,
    width: float = 1.0,
    heads: dict[str, int] | None = None,
    weights: str | os.PathLike | None = None,
    sha256: str | None = None,
    channels_last: bool | None = None,
    **options: Any,
) -> ImageVideoNet:
    """Build model ``name`` of :func:`list_models`, optionally from published weights.

    Args:
        name: a Table-1 model (``r2d``, ``r2plus1d``, ``unidual``, ``unidual_aux``, ...).
        depth: ResNet depth (10, 16, 18, 26, 34, 50, ...); default 34, or the weights' depth.
        width: channel multiplier (published weights are full width, 1.0).
        heads: ``{source key: number of classes}``; with ``weights`` and an ``r2plus1d`` model it
            may be left out to keep the weights' classifier.
        weights: a name of :func:`list_weights`, a URL or a ``.pth`` file of torchvision-layout
            R(2+1)D weights; fetched into ``$UNIDUAL_CACHE`` and hash-checked
            (:mod:`unidual.weights`), then copied in as ``finetune.convert: auto`` would.
        sha256: the hash a URL or file not in the registry must have.
        channels_last: conv weights stored channels-last (None: ``$UNIDUAL_CHANNELS_LAST``, default on).
        **options: the model's options -- ``modalities={key: "image"|"video"}`` (required by
            ``unidual`` / ``unidual_aux``), ``frames``, ``temporal_kernel``, ``layout``, ``bn_eps``,
            ... (docs/models.md lists them; an unknown option is a TypeError).
    """
    if weights is not None:
        from unidual.convert import pretrained_model

        return pretrained_model(
            name,
            weights,
            sha256=sha256,
            depth=depth,
            width=width,
            heads=heads,
            channels_last=channels_last,
            **options,
        )
    if sha256 is not None:
        raise ValueError("sha256= checks a weights file: give weights= too")
    from unidual.models import create_model as build

    # heads=None reaches the registry's check, which names the model and what it needs
    return build(
        name,
        depth=34 if depth is None else depth,
        width=width,
        heads=cast("dict[str, int]", heads),
        channels_last=channels_last,
        **options,
    )


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (``"r2d*"``), in Table-1 order."""
    from unidual.models import list_models as names

    return [n for n in names() if fnmatch.fnmatchcase(n, pattern)]


def list_weights(pattern: str = "*") -> list[str]:
    """Names of the published weights ``create_model(..., weights=NAME)`` can fetch (``unidual weights``)."""
    from unidual.weights import list_weights as names

    return [n for n in names() if fnmatch.fnmatchcase(n, pattern)]


def load_model(
    checkpoint: str | os.PathLike, *, deploy: bool = True, map_location: str | torch.device = "cpu"
) -> ImageVideoNet:
    """The network of a run directory (its best.pt, else last.pt) or checkpoint file, in eval mode.

    ``deploy`` drops the auxiliary heads as the paper does at inference. The checkpoint's label
    maps and config come with :func:`unidual.checkpoint.load_model`, which returns them too.
    """
    from unidual.checkpoint import load_model as load

    model, _ = load(checkpoint, deploy=deploy, map_location=map_location)
    return model
