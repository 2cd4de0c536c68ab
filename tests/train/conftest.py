from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tinydata helpers

from tinydata import make_tiny_sources  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory) -> list[dict]:
    """Generated image + video sources (JPEG / MP4, 32 px, 4 frames), shared by the trainer tests."""
    return make_tiny_sources(tmp_path_factory.mktemp("tiny-data"))
