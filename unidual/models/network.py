"""The network every Table-1 model is: a (2+1)D backbone, temporal aggregation, per-source heads.

Which pathways it has, how inputs are routed onto the backbone and whether it
has auxiliary heads come from its :class:`unidual.models.table.ModelDef`; see
that file for the routing table.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from unidual.models.heads import Heads
from unidual.models.layers import global_pool
from unidual.models.resnet import ResNet2Plus1d
from unidual.models.table import ModelDef
from unidual.pathways import (
    MODALITIES,
    aux_name,
    fold_frames,
    image_to_clip,
    is_aux_name,
)


class MeanOverTime(nn.Module):
    """(N, T, C) per-frame features -> (N, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(1)


class LSTMOverTime(nn.Module):
    """Single-layer LSTM over per-frame features; the last hidden state summarises the clip."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden, num_layers=1, batch_first=True)
        self.out_features = hidden

    def forward(self, x: Tensor) -> Tensor:
        _, (h, _) = self.lstm(x)
        return h[-1]


class ImageVideoNet(nn.Module):
    """Backbone + temporal aggregation + per-source heads, routed as its :class:`ModelDef` says."""

    def __init__(
        self,
        spec: dict[str, Any],
        definition: ModelDef,
        backbone: ResNet2Plus1d,
        heads: dict[str, int],
        head_pathways: dict[str, str],
        *,
        frames: int,
        lstm_hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self._spec = copy.deepcopy(spec)
        self.backbone = backbone
        self.definition = definition
        self.route = dict(definition.route)
        self.frames = frames
        self.temporal: nn.Module = LSTMOverTime(backbone.out_channels, lstm_hidden) if lstm_hidden else MeanOverTime()
        features = lstm_hidden or backbone.out_channels
        self.num_features = features
        self.heads = Heads(features, heads, head_pathways)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        # before every head (auxiliary ones included), as PySlowFast's DROPOUT_RATE; no parameters, so
        # state_dict and spec are the same with or without it, and eval() makes it the identity
        self.head_dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    # -- description -----------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        """``{"name","depth","width","heads","options"}``: ``create_model(**spec-ish)`` rebuilds this model."""
        return copy.deepcopy(self._spec)

    @property
    def name(self) -> str:
        return self._spec["name"]

    @property
    def pathways(self) -> tuple[str, ...]:
        """Pathways the model has (its heads live on them), in the order (image, video)."""
        return self.definition.pathways

    def default_pathway(self, x: Tensor) -> str:
        preferred = "image" if x.dim() == 4 else "video"
        return preferred if preferred in self.route else next(iter(self.route))

    def head_for(self, key: str, pathway: str) -> str:
        """The head that a sample of source ``key`` uses when it runs on ``pathway``.

        A model without that pathway routes the sample to its only one, so the
        answer there is simply ``key``.
        """
        if pathway not in MODALITIES:
            raise ValueError(f"pathway must be 'image' or 'video', got {pathway!r}")
        if key not in self.heads:
            raise KeyError(f"{self.name} has no head for source {key!r} (heads: {list(self.heads.keys())})")
        if pathway not in self.route:
            return key
        for name in (key, aux_name(key)):
            if name in self.heads and self.heads.pathway_of[name] == pathway:
                return name
        raise KeyError(f"{self.name} has no head for source {key!r} on the {pathway} pathway")

    # -- forward ---------------------------------------------------------
    def _check(self, x: Tensor, pathway: str | None) -> str:
        if not isinstance(x, Tensor) or x.dim() not in (4, 5):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{self.name}: expected (N,3,H,W) images or (N,3,T,H,W) clips, got {shape}")
        pathway = pathway or self.default_pathway(x)
        if pathway not in self.route:
            raise ValueError(f"{self.name} has no {pathway!r} pathway (has {tuple(self.route)})")
        return pathway

    def forward_features(self, x: Tensor, pathway: str | None = None) -> Tensor:
        """Pooled features (N, C) of the pathway that runs (default: 4D -> image, 5D -> video)."""
        pathway = self._check(x, pathway)
        if x.dim() == 4 and pathway == "video":
            x = image_to_clip(x, self.frames)  # images as static clips, as the paper's baselines do
        if self.route[pathway] == "video":
            return global_pool(self.backbone(x, "video"))
        if x.dim() == 4:
            return global_pool(self.backbone(x, "image"))
        n, t = x.shape[0], x.shape[2]
        per_frame = global_pool(self.backbone(fold_frames(x), "image")).reshape(n, t, -1)
        return self.temporal(per_frame)

    def forward_head(self, features: Tensor, pathway: str, heads: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Logits of every head attached to ``pathway`` (or of the named ``heads``, wherever they live)."""
        return self.heads(self.head_dropout(features), pathway, heads)

    def forward(self, x: Tensor, pathway: str | None = None, heads: Sequence[str] | None = None) -> dict[str, Tensor]:
        pathway = self._check(x, pathway)
        return self.forward_head(self.forward_features(x, pathway), pathway, heads)

    # -- inference -------------------------------------------------------
    def deploy(self) -> ImageVideoNet:
        """Drop the auxiliary heads in place (the paper removes them after training)."""
        if not self.definition.aux_heads:
            return self
        for name in [n for n in self.heads if is_aux_name(n)]:
            self.heads.remove(name)
        self._spec["options"]["deployed"] = True
        return self

    def pointwise_layers(self, pathway: str) -> list[nn.Module]:
        if pathway in self.backbone.pathways:
            return self.backbone.pointwise_layers(pathway)
        if pathway in self.route:
            return self.backbone.pointwise_layers(self.route[pathway])
        raise ValueError(f"{self.name} has no {pathway!r} pathway (has {tuple(self.route)})")
