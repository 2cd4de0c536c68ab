"""Where the shared real data lives: $UNIDUAL_DATA, else ../shared/data beside the project."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The folder with images/ and videos/ (may not exist; callers check)."""
    env = os.environ.get("UNIDUAL_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (PROJECT_ROOT / ".." / "shared" / "data").resolve()
