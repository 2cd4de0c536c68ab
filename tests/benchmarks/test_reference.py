"""The speed benchmark's plain-PyTorch R(2+1)D-18 (benchmarks/reference.py) is the network unidual builds.

benchmarks/model_speed.py compares against it, so it must have torchvision's parameter count and
load strictly into ``from_torchvision`` with identical outputs.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from unidual.models import is_channels_last
from unidual.models.surgery import from_torchvision

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "reference.py"
_SPEC = importlib.util.spec_from_file_location("unidual_benchmark_reference", _PATH)
reference = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reference)  # loaded by path: benchmarks/ is not a package on sys.path
R2Plus1d18 = reference.R2Plus1d18


def test_reference_is_torchvision_r2plus1d_18_and_matches_unidual():
    torch.manual_seed(0)
    ref = R2Plus1d18(num_classes=400)
    assert sum(p.numel() for p in ref.parameters()) == 31_505_325  # torchvision's r2plus1d_18
    with torch.no_grad():  # non-trivial BN statistics, so a wrong BN mapping cannot hide
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours = from_torchvision(ref.state_dict(), head="k400", frames=4)  # strict load: every key maps
    assert is_channels_last(ours)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x)["k400"], ref.eval()(x), rtol=1e-4, atol=1e-5)
