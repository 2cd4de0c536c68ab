"""UniDual models: (2+1)D layers, the two-pathway ResNet, the paper's Table-1 models, surgery, reports."""

from __future__ import annotations

from torch import nn

from unidual.models.layers import UniDualBlock
from unidual.models.memory import is_channels_last, set_memory_format
from unidual.models.network import ImageVideoNet
from unidual.models.registry import create_model, list_models
from unidual.models.table import ModelDef, get_model_def, register_model


def pointwise_layers(model: nn.Module, pathway: str) -> list[nn.Module]:
    """Point-wise conv of the last (2+1)D conv of every residual block on ``pathway``, in block order.

    1×1 filters for ``"image"``, t×1×1 for ``"video"`` (the visualiser hooks these).
    """
    if not isinstance(model, ImageVideoNet):
        raise TypeError(f"pointwise_layers needs a model from create_model, got {type(model).__name__}")
    return model.pointwise_layers(pathway)


__all__ = [
    "ImageVideoNet",
    "ModelDef",
    "UniDualBlock",
    "create_model",
    "get_model_def",
    "is_channels_last",
    "list_models",
    "pointwise_layers",
    "register_model",
    "set_memory_format",
]
