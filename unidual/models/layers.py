"""Building layers: convolutions and norms that run on images *and* clips.

Every convolution is stored as an ``nn.Conv3d`` (weight ``(O, I, t, kh, kw)``).
When its temporal kernel is 1 it also accepts an image batch ``(N, C, H, W)``
and then runs a real ``F.conv2d`` on ``weight[:, :, 0]`` -- a *view* of the
same parameter, not a copy. That is how the image pathway of UniDual shares
its spatial filters with the video pathway while costing ~1/L of an L-frame
clip, and how deflated (t = 1) networks run frames as 2D images.

A module that exists once per pathway is a :class:`Dual` (``.video`` /
``.image``); a shared module is a plain layer. Both are called as
``run(module, x, pathway)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _triple(v: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(v, int):
        return v, v, v
    t, h, w = v
    return t, h, w


class Conv(nn.Conv3d):
    """A bias-free Conv3d that also runs on ``(N, C, H, W)`` when its temporal kernel is 1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
    ) -> None:
        super().__init__(in_channels, out_channels, _triple(kernel), _triple(stride), _triple(padding), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:
            return super().forward(x)
        if x.dim() == 4:
            if self.kernel_size[0] != 1:
                raise ValueError(
                    f"a {tuple(self.kernel_size)} convolution needs a clip (N,C,T,H,W); got an image batch {tuple(x.shape)}"
                )
            stride, padding = self.stride[1:], self.padding[1:]
            if self.kernel_size[1:] == (1, 1) and padding == (0, 0) and stride != (1, 1):
                # A strided 1×1 conv (the shortcut) samples every s-th pixel: take them first and run it
                # unstrided. Same output; it also avoids a crash of torch 2.13's CPU kernel for the
                # weight gradient of strided 1×1 convs on channels-last batches of odd size (docs/models.md).
                x, stride = x[:, :, :: stride[0], :: stride[1]], (1, 1)
            return F.conv2d(x, self.weight[:, :, 0], self.bias, stride, padding, self.dilation[1:], self.groups)
        raise ValueError(f"expected (N,C,H,W) or (N,C,T,H,W), got shape {tuple(x.shape)}")


class Norm(nn.BatchNorm3d):
    """BatchNorm over channels for images (4D) and clips (5D) alike; running stats are shared by both."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"expected a 4D or 5D input, got shape {tuple(input.shape)}")


class Dual(nn.ModuleDict):
    """One module per pathway (``.video`` / ``.image``); the pathway picks which one runs."""

    def forward(self, x: Tensor, pathway: str) -> Tensor:
        if pathway not in self:
            raise ValueError(f"no {pathway!r} pathway here (have {list(self.keys())})")
        return self[pathway](x)


def run(module: nn.Module, x: Tensor, pathway: str) -> Tensor:
    """Call a shared layer, or the ``pathway`` branch of a :class:`Dual`."""
    return module(x, pathway) if isinstance(module, (Dual, PathwayModule)) else module(x)


class PathwayModule(nn.Module):
    """Base for composite modules whose forward takes ``(x, pathway)``."""


def make_norm(channels: int, pathways: Sequence[str], per_pathway: bool, stats_per_pathway: bool = False) -> nn.Module:
    """The BN after a conv: shared, one per pathway, or shared affine with per-pathway statistics.

    ``per_pathway`` gives each pathway its own BN (scale, shift and running statistics).
    ``stats_per_pathway`` keeps one learned scale and shift (the two branches hold the *same*
    Parameters) but gives each pathway its own running statistics: in training each pathway is
    normalised by its own batch anyway, so only evaluation changes -- each pathway is
    normalised by the statistics of what it saw, not by an average mixed from both.
    """
    if len(pathways) < 2 or not (per_pathway or stats_per_pathway):
        return Norm(channels)
    norms = {p: Norm(channels) for p in pathways}
    if not per_pathway:
        first = norms[pathways[0]]
        for p in pathways[1:]:
            norms[p].weight, norms[p].bias = first.weight, first.bias
    return Dual(norms)


def midplanes(in_ch: int, out_ch: int, t: int = 3, d: int = 3) -> int:
    """Intermediate width M of a (2+1)D conv: same parameter count as the t×d×d 3D conv it replaces.

    M = floor(t·d²·N_in·N_out / (d²·N_in + t·N_out)), as in the R(2+1)D paper and VMZ code.
    """
    return (t * d * d * in_ch * out_ch) // (d * d * in_ch + t * out_ch)


class UniDualBlock(PathwayModule):
    """The paper's UniDual block: shared spatial 1×d×d conv -> BN -> ReLU -> one point-wise conv per pathway.

    ``pathways`` lists the point-wise convs it has: both is the UniDual block of the
    paper (t×1×1 for clips, 1×1 for images, the spatial filters shared); ``("video",)``
    alone is R(2+1)D's (2+1)D conv, ``("image",)`` alone R2D's. One residual block
    (:mod:`unidual.models.resnet`) holds two of them.
    Spatial stride goes to the spatial conv; the temporal stride only to the
    video point-wise conv. The BN after the spatial conv follows a shared conv
    so it is shared, unless ``per_pathway_bn`` (a BN per pathway) or
    ``pathway_bn_stats`` (shared scale and shift, running statistics per pathway).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        mid_ch: int,
        *,
        pathways: Sequence[str],
        t: int = 3,
        d: int = 3,
        stride: int = 1,
        temporal_stride: int = 1,
        per_pathway_bn: bool = False,
        pathway_bn_stats: bool = False,
    ) -> None:
        super().__init__()
        self.spatial = Conv(in_ch, mid_ch, (1, d, d), (1, stride, stride), (0, d // 2, d // 2))
        self.norm = make_norm(mid_ch, pathways, per_pathway_bn, pathway_bn_stats)
        self.relu = nn.ReLU(inplace=True)
        convs = {p: self._pointwise(p, mid_ch, out_ch, t, temporal_stride) for p in pathways}
        self.pointwise: nn.Module = Dual(convs) if len(convs) > 1 else next(iter(convs.values()))

    @staticmethod
    def _pointwise(pathway: str, mid_ch: int, out_ch: int, t: int, temporal_stride: int) -> Conv:
        if pathway == "video":
            return Conv(mid_ch, out_ch, (t, 1, 1), (temporal_stride, 1, 1), (t // 2, 0, 0))
        return Conv(mid_ch, out_ch, 1)

    def forward(self, x: Tensor, pathway: str) -> Tensor:
        x = self.relu(run(self.norm, self.spatial(x), pathway))
        return run(self.pointwise, x, pathway)

    def pointwise_for(self, pathway: str) -> nn.Module:
        return self.pointwise[pathway] if isinstance(self.pointwise, Dual) else self.pointwise

    @torch.no_grad()
    def image_from_video(self) -> None:
        """Start the 1×1 image filters as the deflated t×1×1 video filters (sum over t).

        The image pathway then computes, on a static clip, what the video pathway computes
        (away from the clip's borders), instead of starting from independent random filters.
        """
        if isinstance(self.pointwise, Dual) and set(self.pointwise.keys()) == {"image", "video"}:
            image = cast(Conv, self.pointwise["image"])  # both built by _pointwise
            video = cast(Conv, self.pointwise["video"])
            image.weight.copy_(video.weight.sum(2, keepdim=True))


class SpatialMaxPool(nn.Module):
    """1×3×3 max-pool, spatial stride 2, temporal stride 1 (the paper's 224-px UniDual-152 stem)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:
            return F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        return F.max_pool2d(x, 3, 2, 1)


def global_pool(x: Tensor) -> Tensor:
    """Average over space (images) or space-time (clips): (N, C, ...) -> (N, C)."""
    return torch.flatten(x, 2).mean(-1)
