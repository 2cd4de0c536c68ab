from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from unidual.data.paths import shared_data_dir

# run.channels_last: auto measures the machine once (~16 s) and caches the answer in the user's cache;
# the suite pins the layout instead (tests of the measurement itself unset this), as the docs allow
os.environ.setdefault("UNIDUAL_CHANNELS_LAST", "1")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real data from ../shared/data (or $UNIDUAL_DATA); skips when absent."""
    root = shared_data_dir()
    if not (root / "images").is_dir() or not (root / "videos").is_dir():
        pytest.skip(f"shared data not found at {root} (set UNIDUAL_DATA to the folder with images/ and videos/)")
    return root


@pytest.fixture(scope="session")
def kinetics_clip(shared_data: Path) -> Path:
    path = shared_data / "videos" / "kinetics-samples" / "demo.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path
