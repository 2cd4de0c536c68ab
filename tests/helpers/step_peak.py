"""Measure the peak memory a training step of a config adds on the CPU: ``python -m helpers.step_peak CONFIG``.

Run in its own process started with ``MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=0``: glibc
then serves every block of 64 KiB or more (every tensor that matters) with its own mapping and
unmaps it when freed, so resident memory follows the live tensor bytes instead of keeping freed
heap (the project's allocator tuning, unidual/runtime.py, keeps it on purpose -- which would hide
a step's peak after the first step). The step is built from the config exactly as the estimate
builds it (``footprint.step_parts``), run once to warm up (optimizer state, oneDNN primitives,
thread pools), then the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``: 5) and the
second step's peak RSS minus the RSS before it is printed, as JSON, next to the estimate.
"""

from __future__ import annotations

import gc
import json
import sys

from unidual.train.config import load_config
from unidual.train.footprint import batch_plan, estimate_config, step_parts


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def main(path: str) -> None:
    cfg = load_config(path)
    plan = batch_plan(cfg)
    parts = step_parts(cfg, plan)

    def step() -> None:
        parts.optimizer.zero_grad(set_to_none=True)
        loss = parts.loss()
        loss.backward()
        del loss
        parts.optimizer.step()

    step()
    parts.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    step()
    measured = _status("VmHWM") - before
    fp = estimate_config(cfg, plan)
    print(json.dumps({"measured": measured, "estimated": fp.step_peak, "footprint": fp.to_dict()}))


if __name__ == "__main__":
    main(sys.argv[1])
