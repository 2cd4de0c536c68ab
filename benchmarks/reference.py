"""The plain-PyTorch reference: R(2+1)D exactly as torchvision's ``VideoResNet`` defines it.

Written out here so the benchmarks and the default test suite need no torchvision (it is not
installed in the project environment); torchvision's own model is used instead when it is
importable. The module names mirror torchvision's, so ``unidual.models.torchvision_keys.from_torchvision``
loads its ``state_dict`` strictly. ``R2Plus1d18``: torchvision's ``r2plus1d_18`` (31,505,325
parameters with 400 classes). ``r2plus1d_34(caffe2=True)``: the ig65m-pytorch project's R(2+1)D-34
-- torchvision's topology with blocks (3, 4, 6, 3), the Caffe2/VMZ mid-channel width in the second
conv of the first block of layers 2-4 and BatchNorm eps 1e-3.
"""

from __future__ import annotations

from torch import Tensor, nn


class Conv2Plus1D(nn.Sequential):
    """1×3×3 spatial conv -> BN -> ReLU -> 3×1×1 temporal conv (torchvision's ``Conv2Plus1D``)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1, padding: int = 1) -> None:
        super().__init__(
            nn.Conv3d(in_planes, midplanes, (1, 3, 3), (1, stride, stride), (0, padding, padding), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(midplanes, out_planes, (3, 1, 1), (stride, 1, 1), (padding, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    """torchvision's video ``BasicBlock``: both (2+1)D convs use the first conv's midplanes."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        midplanes = (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)
        self.conv1 = nn.Sequential(
            Conv2Plus1D(inplanes, planes, midplanes, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, midplanes), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.relu(out)


class R2Plus1dStem(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class VideoResNetR2Plus1d(nn.Module):
    """torchvision's ``VideoResNet(BasicBlock, [Conv2Plus1D] * 4, layers, R2Plus1dStem)``."""

    def __init__(self, layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 400) -> None:
        super().__init__()
        self.inplanes = 64
        self.stem = R2Plus1dStem()
        self.layer1 = self._make_layer(64, layers[0], stride=1)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, planes, 1, stride=(stride,) * 3, bias=False), nn.BatchNorm3d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class R2Plus1d18(VideoResNetR2Plus1d):
    """torchvision's ``r2plus1d_18``."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__((2, 2, 2, 2), num_classes)


def caffe2_midplanes(model: VideoResNetR2Plus1d) -> VideoResNetR2Plus1d:
    """The ig65m-pytorch fix: the second conv of layers 2-4's first block gets its own M_i
    (computed from its own in/out planes, as Caffe2/VMZ does) instead of the first conv's."""
    for name in ("layer2", "layer3", "layer4"):
        block = getattr(model, name)[0]
        planes = block.conv2[0][3].out_channels
        mid = (planes * planes * 3 * 3 * 3) // (planes * 3 * 3 + 3 * planes)
        block.conv2[0] = Conv2Plus1D(planes, planes, mid)
        nn.init.kaiming_normal_(block.conv2[0][0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.kaiming_normal_(block.conv2[0][3].weight, mode="fan_out", nonlinearity="relu")
    return model


def set_bn_eps(model: nn.Module, eps: float) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.eps = eps
    return model


def r2plus1d_34(num_classes: int = 400, caffe2: bool = True) -> VideoResNetR2Plus1d:
    """R(2+1)D-34 in torchvision's topology; ``caffe2=True``: as ig65m-pytorch builds it
    (Caffe2 mid-channels in layers 2-4's first block, BatchNorm eps 1e-3)."""
    model = VideoResNetR2Plus1d((3, 4, 6, 3), num_classes)
    return set_bn_eps(caffe2_midplanes(model), 1e-3) if caffe2 else model


def reference_r2plus1d_18(num_classes: int = 400) -> tuple[nn.Module, str]:
    """torchvision's ``r2plus1d_18`` if importable, else the copy above; and which one it is."""
    try:
        from torchvision.models.video import r2plus1d_18
    except ImportError:
        return R2Plus1d18(num_classes), "benchmarks/reference.py (torchvision's topology; torchvision not installed)"
    return r2plus1d_18(weights=None, num_classes=num_classes), "torchvision.models.video.r2plus1d_18"
