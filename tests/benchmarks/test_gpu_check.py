"""benchmarks/gpu_check.py --dry-run: the GPU acceptance script runs its CPU half in CI, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_run_writes_the_report_with_sane_numbers(tmp_path):
    out = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={k: v for k, v in os.environ.items() if k != "UNIDUAL_CHANNELS_LAST"},  # the check measures "auto"
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = report["checks"]
    assert report["dry_run"] is True
    assert set(checks) == {
        "environment",
        "step",
        "cudnn_benchmark",
        "memory_format",
        "memory_152",
        "train_e2e",
        "torchrun_resume",
    }
    assert checks["cudnn_benchmark"]["status"] == checks["torchrun_resume"]["status"] == "skipped"
    assert all(c["status"] == "ok" for n, c in checks.items() if n not in ("cudnn_benchmark", "torchrun_resume"))

    assert checks["environment"]["cpu_fp32_matmul_gflops"] > 0  # the yardstick beside every ratio
    step = checks["step"]
    assert step["counter_probe_syncs"] == 1  # a step reading one value with .item() counts one sync
    fp32 = step["precisions"]["fp32"]
    assert (
        fp32["unidual_aux"]["ms"] > 0 and fp32["reference"]["ms"] > 0 and fp32["ratio_unidual_aux_over_reference"] > 0
    )
    assert all(isinstance(n, int) and n > 0 for n in fp32["unidual_aux"]["syncs"].values())
    assert fp32["reference"]["syncs"] == {}  # a plain forward/backward/SGD step reads nothing back
    assert fp32["unidual_aux"]["estimated_step_peak_gib"] > 0

    fmt = checks["memory_format"]
    assert fmt["source"] == "measured" and set(fmt["ms"]) == {"channels_last", "contiguous"}
    ratio = fmt["ms"]["channels_last"] / fmt["ms"]["contiguous"]
    if abs(ratio - 1.03) > 0.01:  # (the report rounds to 0.01 ms)
        assert fmt["channels_last"] == (ratio <= 1.03)
    for setting in checks["memory_152"]["settings"].values():
        # parameters, gradients and momentum alone are 3x the parameter bytes; activations come on top
        assert setting["estimated_peak_gib"] > 3 * setting["params_gib"] > 0
        assert setting["source"] == "estimate (dry run)"
    e2e = checks["train_e2e"]
    assert set(e2e["metrics"]) == {"shapes", "motion"} and e2e["steps"] == 2
    text = (tmp_path / "gpu_check.md").read_text()
    assert "GPU acceptance check" in text and "| step | ok |" in text and "UniDual-Aux-152" in text
