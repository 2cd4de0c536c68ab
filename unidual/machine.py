"""Facts about the machine a process runs on, and where unidual keeps per-machine caches.

Measured choices (the memory format, unidual/models/channels_last.py) are cached per machine
under :func:`cache_dir`: ``$UNIDUAL_CACHE`` if set, else ``~/.cache/unidual`` (the folder the
published weights go to as well, ``unidual/weights.py``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from functools import lru_cache
from pathlib import Path

import torch

CACHE_ENV = "UNIDUAL_CACHE"


def cache_dir() -> Path:
    """``$UNIDUAL_CACHE``, else ``~/.cache/unidual``; not created here."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "unidual")


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name: ``lscpu``'s, else /proc/cpuinfo's, else the platform string."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """What decides kernel speed on ``device``: the GPU and cuDNN version, or the CPU and thread count."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)}, cuDNN {torch.backends.cudnn.version()}"
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def matmul_gflops(size: int, reps: int = 3) -> float:
    """Best-of-``reps`` fp32 GFLOP/s of one ``size``×``size`` CPU matrix product."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def matmul_peak(sizes: tuple[int, ...] = (1024, 2048, 3072), reps: int = 3) -> float:
    """The machine's practical fp32 peak: the best ``torch.mm`` GFLOP/s over a few sizes.

    The yardstick beside every wall time we quote: 2-core machines differ 3-5x in it, and a time
    without it cannot be compared with another machine's.
    """
    return max(matmul_gflops(s, reps) for s in sizes)


__all__ = ["CACHE_ENV", "cache_dir", "cpu_model", "device_name", "matmul_gflops", "matmul_peak"]
