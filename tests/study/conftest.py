from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tinystudy helpers

from tinystudy import make_photos  # noqa: E402


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """Tiny train/test class folders of JPEG photos (the builder's input)."""
    return make_photos(tmp_path_factory.mktemp("photos"))
