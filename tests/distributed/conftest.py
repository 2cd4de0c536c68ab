from __future__ import annotations

import pytest
from helpers.tinydata import make_tiny_sources


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory) -> list[dict]:
    """Generated image + video sources (JPEG / MP4, 32 px, 4 frames), shared by the trainer tests."""
    return make_tiny_sources(tmp_path_factory.mktemp("tiny-data"))
