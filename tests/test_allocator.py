"""The allocator tuning must stop the page faults of re-allocating large tensors, and be switchable."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from unidual import runtime

PROBE = r"""
import json, resource, torch
from unidual.runtime import tune_allocator
from unidual.models import create_model
applied = tune_allocator()
torch.set_num_threads(1)
model = create_model("unidual", depth=10, width=0.25, heads={"clips": 5}, modalities={"clips": "video"}).eval()
clips = torch.randn(16, 3, 8, 32, 32)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with torch.no_grad():
    for _ in range(3):
        model(clips, pathway="video")
    before = faults()
    for _ in range(5):
        model(clips, pathway="video")
print(json.dumps({"applied": applied, "faults": (faults() - before) / 5}))
"""


def _probe(switch: str) -> dict:
    env = dict(os.environ, UNIDUAL_MALLOC_TUNING=switch, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="allocator tuning exists for glibc only")
def test_tuning_removes_page_faults_of_reallocation():
    on, off = _probe("1"), _probe("0")
    assert on["applied"] is True and off["applied"] is False
    # untuned, glibc maps fresh zero pages for the activations of every forward and unmaps them after
    assert off["faults"] > 1000, off
    assert on["faults"] < off["faults"] / 10, (on, off)


def test_bad_switch_value_is_an_error(monkeypatch):
    monkeypatch.setenv(runtime.ENV_SWITCH, "maybe")
    with pytest.raises(ValueError, match="UNIDUAL_MALLOC_TUNING must be 1 or 0"):
        runtime.enabled_by_env()
