"""On/off switches read from the environment, for settings that apply to a whole process."""

from __future__ import annotations

import os

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
