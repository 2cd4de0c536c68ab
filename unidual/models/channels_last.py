"""Channels-last or contiguous: decided by a short measurement on the machine at hand, cached.

Which layout is faster depends on the machine, not only on the device type: on one 2-core EPYC
(fp32 matmul ~180 GFLOP/s) the channels-last R(2+1)D-18 step was 1.16x faster than plain
PyTorch's contiguous one, on another (~68 GFLOP/s) 0.94x -- there PyTorch's own channels-last
lost to its contiguous layout too (docs/performance.md). So ``run.channels_last: auto`` times a
few training steps of a slim R(2+1)D (depth 10, half width, 2 clips of 4x56²) in each
layout and keeps the faster one (channels-last, the default, unless contiguous is more than 3 %
faster: closer than that the order flips with the load), once per machine: the answer is cached under
:func:`unidual.machine.cache_dir` (``memory_format.json``), keyed by the device (CPU model and
thread count, or GPU and cuDNN version) and the torch version. ``true`` / ``false`` skip the
measurement; so does ``$UNIDUAL_CHANNELS_LAST`` (0/1) when set. On a GPU the layout is measured
too; if the measurement cannot run there, cuDNN's channels_last_3d is kept (the usual choice for
cuDNN convolutions -- unmeasured here).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from unidual.machine import cache_dir, device_name
from unidual.models.memory import ENV_SWITCH, default_channels_last, set_memory_format

CACHE_FILE = "memory_format.json"
TIE = 0.03  # contiguous must be this much faster to replace the default channels-last (timing noise)


@dataclass(frozen=True)
class Probe:
    """The slim R(2+1)D timed in each layout (~4 GFLOP a training step at these defaults)."""

    depth: int = 10
    width: float = 0.5
    batch: int = 2
    frames: int = 4
    size: int = 56


PROBE = Probe()
SETTINGS = ("auto", True, False)

Timer = Callable[[bool, torch.device], float]  # seconds of one step in a layout (channels_last?)


@dataclass
class LayoutChoice:
    channels_last: bool
    source: str  # "config", "environment", "cache", "measured" or "default" (measurement failed)
    key: str = ""  # the cache key: device, torch version
    seconds: dict[str, float] = field(default_factory=dict)  # {"channels_last": s, "contiguous": s} per step

    def describe(self) -> str:
        layout = "channels-last" if self.channels_last else "contiguous"
        times = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in self.seconds.items())
        return f"memory format {layout} ({self.source}{': ' + times if times else ''})"


def cache_key(device: torch.device) -> str:
    return f"{device.type}: {device_name(device)}; torch {torch.__version__}"


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or unreadable: measure again and rewrite it


def _write_cache(path: Path, key: str, choice: LayoutChoice) -> None:
    entries = _read_cache(path)
    entries[key] = {**asdict(choice), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=1) + "\n")
        tmp.replace(path)
    except OSError as exc:  # a read-only home: the choice holds for this process, measured again next time
        print(f"warning: cannot cache the memory-format choice in {path}: {exc}", file=sys.stderr)


def time_step(channels_last: bool, device: torch.device, rounds: int = 2) -> float:
    """Best seconds per training step (forward, cross-entropy, backward, SGD) of the probe model."""
    from unidual.models.registry import create_model

    p = PROBE
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        net = create_model("r2plus1d", depth=p.depth, width=p.width, heads={"probe": 10}, frames=p.frames)
        model = set_memory_format(net.to(device), channels_last)
        x = torch.randn(p.batch, 3, p.frames, p.size, p.size, device=device)
        y = torch.zeros(p.batch, dtype=torch.long, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        loss = F.cross_entropy(model(x)["probe"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: kernel selection, allocator, oneDNN primitive caches
    best = float("inf")
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(device: torch.device, timer: Timer = time_step, repeats: int = 2) -> dict[str, float]:
    """Seconds per step in each layout, measured alternately (``repeats`` times each; the best kept)."""
    seconds = {"channels_last": float("inf"), "contiguous": float("inf")}
    for _ in range(repeats):
        for name, cl in (("channels_last", True), ("contiguous", False)):
            seconds[name] = min(seconds[name], timer(cl, device))
    return seconds


def choose_channels_last(
    setting: bool | str = "auto",
    device: torch.device | str = "cpu",
    *,
    cache: Path | None = None,
    timer: Timer = time_step,
) -> LayoutChoice:
    """The memory format to train in: ``setting`` true/false as given, ``"auto"`` measured (cached).

    ``auto`` order: ``$UNIDUAL_CHANNELS_LAST`` when set; the cached answer for this device and
    torch version; else :func:`measure` now (a few seconds on a CPU) and cache it. ``cache`` is
    the JSON file (default ``cache_dir()/memory_format.json``); ``timer`` times one layout
    (tests stub it).
    """
    if isinstance(setting, bool):
        return LayoutChoice(setting, "config")
    if setting != "auto":
        raise ValueError(f"run.channels_last must be auto, true or false, got {setting!r}")
    if ENV_SWITCH in os.environ:
        return LayoutChoice(default_channels_last(), "environment")
    device = torch.device(device)
    key = cache_key(device)
    path = cache if cache is not None else cache_dir() / CACHE_FILE
    hit = _read_cache(path).get(key)
    if isinstance(hit, dict) and isinstance(hit.get("channels_last"), bool):
        return LayoutChoice(hit["channels_last"], "cache", key, dict(hit.get("seconds") or {}))
    try:
        seconds = measure(device, timer)
    except (RuntimeError, ValueError) as exc:  # e.g. out of memory beside another job: keep the default
        print(f"warning: memory-format measurement failed ({exc}); using channels-last", file=sys.stderr)
        return LayoutChoice(True, "default", key)
    channels_last = seconds["channels_last"] <= seconds["contiguous"] * (1 + TIE)
    choice = LayoutChoice(channels_last, "measured", key, seconds)
    _write_cache(path, key, choice)
    return choice


__all__ = ["CACHE_FILE", "PROBE", "LayoutChoice", "Probe", "cache_key", "choose_channels_last", "measure", "time_step"]
