import pytest
import torch
from torch import nn

from unidual.evaluate.fold import FoldError, fold_batchnorm


class Branchy(nn.Module):
    """Python control flow (not fx-traceable) and nested conv+BN pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(4), nn.ReLU())
        self.temporal = nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] > 1:
            x = self.stem(x)
        x = torch.relu(self.bn(self.temporal(x)))
        return self.fc(x.mean((2, 3, 4)))


def _randomise_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def test_fold_batchnorm_removes_bn_and_keeps_output():
    model = Branchy().eval()
    _randomise_bn(model)
    x = torch.randn(2, 3, 4, 8, 8)
    folded, pairs = fold_batchnorm(model, x)
    assert {(p.conv, p.norm) for p in pairs} == {("stem.0", "stem.1"), ("temporal", "bn")}
    assert not any(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm3d) for m in model.modules())  # original untouched
    y = torch.randn(5, 3, 4, 8, 8)
    assert torch.allclose(folded(y), model(y), atol=1e-5)


def test_fold_refuses_when_conv_output_is_reused():
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = Reuse().eval()
    model.bn.running_mean.fill_(3.0)
    with pytest.raises(FoldError):
        fold_batchnorm(model, torch.randn(1, 3, 4, 4))
