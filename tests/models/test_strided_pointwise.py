"""A strided 1×1 conv on images runs as "subsample, then 1×1": same values, and no crash.

torch 2.13 on CPU segfaults in the weight gradient of a stride-2 1×1 conv2d on a channels-last
batch of odd size with 2+ threads (found through the skip-budget test: a batch of 3 images).
The crash kills the process, so the training step runs in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.nn.functional as F

from unidual.models.layers import Conv

STEP = """
import torch
from unidual.models import create_model
torch.set_num_threads(2)
m = create_model("r2d", depth=10, width=0.125, heads={"img": 2}, channels_last=True).train()
for n in (3, 5):
    out = m(torch.randn(n, 3, 32, 32))["img"]
    out.sum().backward()
print("ok")
"""


def test_strided_pointwise_conv_equals_the_strided_conv():
    conv = Conv(8, 16, 1, (2, 2, 2))
    x = torch.randn(3, 8, 15, 16)
    expected = F.conv2d(x, conv.weight[:, :, 0], None, 2)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    clip = torch.randn(2, 8, 4, 16, 16)
    assert conv(clip).shape == (2, 16, 2, 8, 8)  # clips keep the 3D conv (temporal stride too)


def test_image_training_step_with_odd_batches_and_two_threads_does_not_crash():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", STEP], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
