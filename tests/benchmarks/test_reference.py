"""The speed benchmark's plain-PyTorch R(2+1)D-18 (benchmarks/reference.py) is the network unidual builds.

benchmarks/model_speed.py compares against it, so it must have torchvision's parameter count and
load strictly into ``from_torchvision`` with identical outputs.
"""

from __future__ import annotations

import torch
from helpers.nets import load_reference, randomise_bn

from unidual.models import is_channels_last
from unidual.models.torchvision_keys import from_torchvision

reference = load_reference()
R2Plus1d18 = reference.R2Plus1d18


def test_reference_is_torchvision_r2plus1d_18_and_matches_unidual():
    torch.manual_seed(0)
    ref = R2Plus1d18(num_classes=400)
    assert sum(p.numel() for p in ref.parameters()) == 31_505_325  # torchvision's r2plus1d_18
    randomise_bn(ref, affine=False)  # non-trivial BN statistics, so a wrong BN mapping cannot hide
    ours = from_torchvision(ref.state_dict(), head="k400", frames=4)  # strict load: every key maps
    assert is_channels_last(ours)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x)["k400"], ref.eval()(x), rtol=1e-4, atol=1e-5)
