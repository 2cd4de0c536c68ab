"""Memory before the run (unidual/train/footprint.py, `unidual info CONFIG --memory`): traced vs measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from unidual.cli import main as cli
from unidual.train.config import load_config
from unidual.train.footprint import StepParts, batch_plan, estimate_config, trace_step

TESTS = Path(__file__).resolve().parents[1]


def _config(depth: int = 10, width: float = 0.5, batch: int = 8, frames: int = 8, crop: int = 64, **run) -> dict:
    """UniDual-Aux on one image and one video source (roots never read: the estimate needs no data)."""
    custom = {"protocol": "custom", "resize": crop, "crop": crop}
    img = {"key": "img", "modality": "image", "format": "folder", "root": "/nonexistent/img"}
    vid = {
        "key": "vid",
        "modality": "video",
        "format": "folder",
        "root": "/nonexistent/vid",
        "clip": {"frames": frames},
    }
    return {
        "regime": "unidual_aux",
        "sources": [
            {**img, "classes": [f"c{i}" for i in range(10)], "transform": custom},
            {**vid, "classes": [f"v{i}" for i in range(7)], "transform": custom},
        ],
        "model": {"name": "unidual_aux", "depth": depth, "width": width},
        "optim": {"batch_size": batch},
        "run": run,
    }


def _can_reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _can_reset_peak_rss(), reason="needs Linux /proc/self/clear_refs to reset the peak-RSS mark")
def test_estimate_within_25_percent_of_the_measured_cpu_peak(tmp_path):
    """The traced peak of a step against the real one: see tests/helpers/step_peak.py for how it is measured.

    UniDual-Aux depth 10, width 0.5, 4 images 64² + 4 clips 8x64²: a step adds ~0.2 GB, so the
    runtime's own allocations (a few MB) cannot decide the comparison.
    """
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(_config()))
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0",
           "UNIDUAL_MALLOC_TUNING": "0", "PYTHONPATH": str(TESTS)}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "helpers.step_peak", str(path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    measured, estimated = result["measured"], result["estimated"]
    assert measured > 100 * 2**20, result  # a step that really allocates
    assert abs(estimated - measured) <= 0.25 * measured, (estimated / 2**20, measured / 2**20)


def _parts(batch: int, momentum: float = 0.9) -> StepParts:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    x = torch.randn(batch, 3, 32, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    return StepParts(model, opt, x, lambda: model(x).square().mean())


def test_trace_counts_parameters_gradients_state_and_activations():
    numel = sum(p.numel() for p in _parts(1).model.parameters())
    one, two = trace_step(lambda: _parts(4)), trace_step(lambda: _parts(8))
    assert one.params == one.grads == one.optimizer == 4 * numel
    assert trace_step(lambda: _parts(4, momentum=0.0)).optimizer == 0  # plain SGD keeps no state
    assert one.inputs == 4 * 3 * 32 * 32 * 4
    # ReLU saves its output (8 channels), which conv2 saves too (one storage); square() its input;
    # conv1's input is the batch (its own line)
    assert one.activations == 4 * (8 * 32 * 32 + 4 * 30 * 30) * 4
    assert two.activations == 2 * one.activations
    assert one.peak >= one.start + one.activations and one.start >= one.params + one.optimizer + one.inputs


def test_amp_halves_the_activations_and_random_routing_is_traced():
    small = {"depth": 10, "width": 0.25, "crop": 32, "frames": 4}
    fp32 = estimate_config(load_config(data=_config(**small)))
    bf16 = estimate_config(load_config(data=_config(**small, amp="bf16")))
    # conv/BN/ReLU outputs are saved in bf16; autocast's bf16 copies of the weights are saved too,
    # which in a model this slim is a visible share -- hence not exactly half
    assert 0.4 < bf16.activations / fp32.activations < 0.75
    assert bf16.params == fp32.params
    random = estimate_config(load_config(data=_config(**small), overrides=["aux.routing=random"]))
    assert 0 < random.activations <= fp32.activations  # masks taken as all true: at most routing 'both'


def test_batch_plan_follows_the_sampler_share_and_the_crop():
    plan = batch_plan(load_config(data=_config(batch=5, crop=48, frames=6)))
    assert plan.shapes == {"img": (3, 3, 48, 48), "vid": (2, 3, 6, 48, 48)}
    assert plan.classes == {"img": 10, "vid": 7} and plan.assumed_classes == []


def test_cli_info_config_memory(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(_config(depth=10, width=0.25, crop=32, frames=4)))
    assert cli(["info", str(path), "--memory", "--json", "optim.batch_size=4"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"params", "grads", "optimizer", "activations", "peak", "step_peak"} <= set(info)
    assert "2 images 32x32" in info["setup"]["batch"]
    assert cli(["info", str(path), "--memory"]) == 0
    assert "saved activations" in capsys.readouterr().out
    assert cli(["info", str(path)]) == 0  # the config's model at its clip size
    assert "GMACs per clip" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "r2d", "--memory"], "need a training config"),
        (["info", "no-such-model-or-file.yaml"], "neither a model name"),
        (["info", "CFG", "--memory", "--classes", "img=ten"], "--classes"),
        (["info", "CFG", "--memory", "optim.batch_size=0"], "optim.batch_size"),
    ],
)
def test_cli_info_errors_are_one_line(tmp_path, capsys, argv, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(_config()))
    assert cli([str(path) if a == "CFG" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
