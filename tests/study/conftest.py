from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tinystudy import make_photos


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """Tiny train/test class folders of JPEG photos (the builder's input)."""
    return make_photos(tmp_path_factory.mktemp("photos"))
