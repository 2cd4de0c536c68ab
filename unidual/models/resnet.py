"""The (2+1)D ResNet backbone with one or two pathways.

``pathways=("video",)`` is R(2+1)D, ``("image",)`` is R2D (the same network
with every t×1×1 point-wise conv replaced by 1×1, so deflating an R(2+1)D
gives an R2D exactly), ``("video", "image")`` is the UniDual backbone.

BatchNorm placement (default): a BN that follows a shared conv is shared (one
module, running stats from both modalities); a BN that follows a point-wise
conv belongs to its pathway. ``per_pathway_bn=True`` gives every BN one copy
per pathway. The residual shortcut, when the shape changes, is a shared
1×1×1 conv (stride (s_t, s, s) on clips, (s, s) on images) plus a shared BN:
it is a point-wise *spatial* map with no temporal extent, so both modalities
can use it, and it is where R(2+1)D and R2D already agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from torch import Tensor, nn

from unidual.models.layers import (
    Conv,
    PathwayModule,
    SpatialMaxPool,
    UniDualBlock,
    make_norm,
    midplanes,
    run,
)

# depth -> (block, blocks per stage); VMZ's configurations
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    26: ("basic", (2, 3, 4, 3)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
LAYOUTS = ("vmz", "torchvision")
IMAGE_INITS = ("independent", "deflate")  # image 1×1 filters: own random init, or the deflated video filters
STAGE_WIDTHS = (64, 128, 256, 512)
STEM_MID = 45  # the (2+1)D stem's intermediate width in VMZ and torchvision
EXPANSION = {"basic": 1, "bottleneck": 4}


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class Shortcut(PathwayModule):
    """Projection shortcut: shared 1×1×1 conv + BN (per pathway only with ``per_pathway_bn``)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, temporal_stride: int, norm: nn.Module) -> None:
        super().__init__()
        self.conv = Conv(in_ch, out_ch, 1, (temporal_stride, stride, stride))
        self.norm = norm

    def forward(self, x: Tensor, pathway: str) -> Tensor:
        return run(self.norm, self.conv(x), pathway)


class BasicBlock(PathwayModule):
    """Two (2+1)D convs with a residual connection."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, *, stride: int, temporal_stride: int, cfg: BackboneConfig) -> None:
        super().__init__()
        out_ch = planes
        m1 = midplanes(in_ch, planes, cfg.t)
        # torchvision reuses the first conv's M for the second conv; VMZ computes it per conv
        m2 = m1 if cfg.layout == "torchvision" else midplanes(planes, planes, cfg.t)
        self.conv1 = cfg.unidual_block(in_ch, planes, m1, stride=stride, temporal_stride=temporal_stride)
        self.bn1 = cfg.pathway_norm(planes)
        self.conv2 = cfg.unidual_block(planes, planes, m2)
        self.bn2 = cfg.pathway_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = cfg.shortcut(in_ch, out_ch, stride, temporal_stride)

    def forward(self, x: Tensor, pathway: str) -> Tensor:
        out = self.relu(run(self.bn1, self.conv1(x, pathway), pathway))
        out = run(self.bn2, self.conv2(out, pathway), pathway)
        identity = x if self.shortcut is None else self.shortcut(x, pathway)
        return self.relu(out + identity)

    def last_conv(self) -> UniDualBlock:
        return self.conv2

    def last_norm(self) -> nn.Module:
        """The BN before the residual sum (zero-init residual starts its γ at 0)."""
        return self.bn2


class Bottleneck(PathwayModule):
    """1×1×1 (shared) -> (2+1)D 3×3 -> 1×1×1 (shared), expansion 4."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, *, stride: int, temporal_stride: int, cfg: BackboneConfig) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = Conv(in_ch, planes, 1)
        self.bn1 = cfg.shared_norm(planes)
        self.conv2 = cfg.unidual_block(
            planes, planes, midplanes(planes, planes, cfg.t), stride=stride, temporal_stride=temporal_stride
        )
        self.bn2 = cfg.pathway_norm(planes)
        self.conv3 = Conv(planes, out_ch, 1)
        self.bn3 = cfg.shared_norm(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = cfg.shortcut(in_ch, out_ch, stride, temporal_stride)

    def forward(self, x: Tensor, pathway: str) -> Tensor:
        out = self.relu(run(self.bn1, self.conv1(x), pathway))
        out = self.relu(run(self.bn2, self.conv2(out, pathway), pathway))
        out = run(self.bn3, self.conv3(out), pathway)
        identity = x if self.shortcut is None else self.shortcut(x, pathway)
        return self.relu(out + identity)

    def last_conv(self) -> UniDualBlock:
        return self.conv2

    def last_norm(self) -> nn.Module:
        return self.bn3


class BackboneConfig:
    """Choices shared by every block of one backbone."""

    def __init__(
        self, pathways: Sequence[str], t: int, layout: str, per_pathway_bn: bool, pathway_bn_stats: bool = False
    ) -> None:
        self.pathways = tuple(pathways)
        self.t = t
        self.layout = layout
        self.per_pathway_bn = per_pathway_bn
        self.pathway_bn_stats = pathway_bn_stats

    def unidual_block(
        self, in_ch: int, out_ch: int, mid_ch: int, *, d: int = 3, stride: int = 1, temporal_stride: int = 1
    ) -> UniDualBlock:
        """A (2+1)D conv with this backbone's pathways, temporal kernel and BN choices."""
        return UniDualBlock(
            in_ch,
            out_ch,
            mid_ch,
            pathways=self.pathways,
            t=self.t,
            d=d,
            stride=stride,
            temporal_stride=temporal_stride,
            per_pathway_bn=self.per_pathway_bn,
            pathway_bn_stats=self.pathway_bn_stats,
        )

    def pathway_norm(self, channels: int) -> nn.Module:
        """BN after a point-wise conv: one per pathway."""
        return make_norm(channels, self.pathways, per_pathway=True)

    def shared_norm(self, channels: int) -> nn.Module:
        """BN after a shared conv: shared unless per_pathway_bn (or per-pathway statistics)."""
        return make_norm(channels, self.pathways, self.per_pathway_bn, self.pathway_bn_stats)

    def shortcut(self, in_ch: int, out_ch: int, stride: int, temporal_stride: int) -> Shortcut | None:
        if stride == 1 and temporal_stride == 1 and in_ch == out_ch:
            return None
        return Shortcut(in_ch, out_ch, stride, temporal_stride, self.shared_norm(out_ch))


class Stem(PathwayModule):
    """(2+1)D stem: 1×7×7 spatial conv (stride 2) to 45 channels, BN, ReLU, point-wise conv, BN, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int, cfg: BackboneConfig, maxpool: bool) -> None:
        super().__init__()
        self.conv = cfg.unidual_block(in_ch, out_ch, mid_ch, d=7, stride=2)
        self.bn = cfg.pathway_norm(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.pool = SpatialMaxPool() if maxpool else nn.Identity()

    def forward(self, x: Tensor, pathway: str) -> Tensor:
        return self.pool(self.relu(run(self.bn, self.conv(x, pathway), pathway)))


class ResNet2Plus1d(nn.Module):
    """Stem + four residual stages; returns the last feature maps of the chosen pathway.

    Images (4D) run with 2D ops, clips (5D) with 3D ops; the video pathway
    needs clips, the image pathway runs on images (frames are folded into the
    batch by the caller).
    """

    # the four stages, registered by name in __init__ (state-dict keys ``layer1.*`` .. ``layer4.*``)
    layer1: nn.ModuleList
    layer2: nn.ModuleList
    layer3: nn.ModuleList
    layer4: nn.ModuleList

    def __init__(
        self,
        depth: int,
        *,
        pathways: Sequence[str],
        width: float = 1.0,
        t: int = 3,
        layout: str = "vmz",
        per_pathway_bn: bool = False,
        pathway_bn_stats: bool = False,
        image_init: str = "independent",
        maxpool: bool = False,
        temporal_strides: bool = True,
        in_channels: int = 3,
        bn_eps: float = 1e-5,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"unsupported depth {depth}; choose one of {sorted(DEPTHS)}")
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
        if layout == "torchvision" and DEPTHS[depth][0] != "basic":
            raise ValueError("layout='torchvision' exists only for basic-block depths (10, 18, 26, 34)")
        block_name, counts = DEPTHS[depth]
        block = BasicBlock if block_name == "basic" else Bottleneck
        if image_init not in IMAGE_INITS:
            raise ValueError(f"image_init must be one of {IMAGE_INITS}, got {image_init!r}")
        cfg = BackboneConfig(pathways, t, layout, per_pathway_bn, pathway_bn_stats)
        self.pathways = cfg.pathways
        self.in_channels = in_channels
        stem_out = scaled(STAGE_WIDTHS[0], width)
        self.stem = Stem(in_channels, stem_out, scaled(STEM_MID, width), cfg, maxpool)
        # temporal striding belongs to the video pathway only
        tstride = 2 if temporal_strides and "video" in cfg.pathways else 1
        in_ch = stem_out
        for i, (planes, n) in enumerate(zip(STAGE_WIDTHS, counts)):
            planes = scaled(planes, width)
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                s, ts = (stride, tstride if stride == 2 else 1) if j == 0 else (1, 1)
                blocks.append(block(in_ch, planes, stride=s, temporal_stride=ts, cfg=cfg))
                in_ch = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.ModuleList(blocks))
        self.out_channels = in_ch
        self._init_weights()
        for m in self.modules():  # 1e-5: PyTorch's default; 1e-3: Caffe2/VMZ-trained weights (ig65m)
            if isinstance(m, nn.BatchNorm3d):
                m.eps = bn_eps
        if image_init == "deflate":
            for m in self.modules():
                if isinstance(m, UniDualBlock):
                    m.image_from_video()
        if zero_init_residual:  # every residual branch starts at 0: a block without projection is the identity
            for b in self.blocks():
                for m in b.last_norm().modules():
                    if isinstance(m, nn.BatchNorm3d):
                        nn.init.zeros_(m.weight)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self) -> list[nn.ModuleList]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def blocks(self) -> list[BasicBlock | Bottleneck]:
        """Every residual block, stage by stage (each stage holds blocks of one kind)."""
        return [cast("BasicBlock | Bottleneck", b) for stage in self.stages() for b in stage]

    def forward(self, x: Tensor, pathway: str) -> Tensor:
        if pathway not in self.pathways:
            raise ValueError(f"this backbone has no {pathway!r} pathway (has {self.pathways})")
        if x.dim() not in (4, 5) or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (N,{self.in_channels},H,W) or (N,{self.in_channels},T,H,W), got shape {tuple(x.shape)}"
            )
        if pathway == "video" and x.dim() != 5:
            raise ValueError(f"the video pathway needs a clip (N,C,T,H,W), got shape {tuple(x.shape)}")
        x = self.stem(x, pathway)
        for block in self.blocks():
            x = block(x, pathway)
        return x

    def pointwise_layers(self, pathway: str) -> list[nn.Module]:
        """The point-wise conv of each block's last (2+1)D conv, in block order."""
        return [b.last_conv().pointwise_for(pathway) for b in self.blocks()]


__all__ = ["DEPTHS", "BasicBlock", "Bottleneck", "ResNet2Plus1d", "scaled"]
