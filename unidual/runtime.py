"""Process-wide runtime settings: on/off switches read from the environment, and the allocator tuning.

**Switches.** :func:`env_flag` reads ``$NAME`` as a boolean for settings that apply to a whole
process (``UNIDUAL_CHANNELS_LAST``, ``UNIDUAL_MALLOC_TUNING``); anything but 1/0, true/false,
yes/no, on/off is an error, so a typo is never silently "on".

**Allocator tuning** (glibc only): keep freed tensor memory in the process instead of handing it
back to the kernel. glibc serves every allocation above its mmap threshold (128 KiB at start,
raised only slowly) with a fresh ``mmap`` and unmaps it on free. CPU PyTorch allocates each
activation anew, so every forward of a video network touches tens of MB of new pages that the
kernel zero-fills. Raising the mmap threshold to glibc's maximum (32 MiB) and the trim threshold
to 1 GiB lets freed blocks be reused (measured gain and memory cost: docs/performance.md,
"Allocator tuning"). jemalloc / tcmalloc via ``LD_PRELOAD`` (what PyTorch's CPU tuning guide
recommends) do the same; this needs no extra install. Applied once per process by every
``unidual`` command and by the trainer; Python users can call :func:`tune_allocator` themselves.
Off with ``UNIDUAL_MALLOC_TUNING=0``. A no-op where the C library is not glibc (macOS, Windows,
musl) and harmless on CUDA (it only touches host memory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_ON = ("1", "true", "yes", "on", "")
_OFF = ("0", "false", "no", "off")


def env_flag(name: str, default: bool = True) -> bool:
    """``$name`` as a boolean (1/0, true/false, yes/no, on/off); ``default`` when unset; anything else is an error."""
    if name not in os.environ:
        return default
    value = os.environ[name].strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"${name} must be 1 or 0 (true/false), got {os.environ[name]!r}")


ENV_SWITCH = "UNIDUAL_MALLOC_TUNING"
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from <malloc.h>

_applied: bool | None = None


def enabled_by_env() -> bool:
    """True unless ``$UNIDUAL_MALLOC_TUNING`` is 0 / false / no / off."""
    return env_flag(ENV_SWITCH)


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they are now raised."""
    global _applied
    if _applied is None:
        libc = _glibc() if enabled_by_env() else None
        _applied = bool(
            libc is not None
            and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        )
    return _applied


__all__ = ["ENV_SWITCH", "enabled_by_env", "env_flag", "tune_allocator"]
