"""`unidual serve` in a real headless Chromium: choose a file on the page, read what it shows.

Skipped (with the reason) where no Chromium or no websocket-client is installed. Set
``UNIDUAL_SCREENSHOT=PATH.png`` to keep the screenshot of the result (docs/serve.md's was made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'unidual[serve]')")
from helpers.browser import Chromium, find_chromium
from helpers.serving import running

from unidual.serve.app import create_app

EXECUTABLE, WHY = find_chromium()
pytestmark = pytest.mark.skipif(EXECUTABLE is None, reason=WHY)


@pytest.fixture(scope="module")
def page(tiny_run, tmp_path_factory):
    with running(create_app(tiny_run["checkpoint"], timeout=120)) as url:
        browser = Chromium(EXECUTABLE, tmp_path_factory.mktemp("profile"))
        try:
            browser.call("Page.navigate", url=url + "/")
            browser.wait_for("document.getElementById('info').textContent.includes('unidual_aux')")
            yield browser
        finally:
            browser.close()


def test_page_shows_top5_and_feature_maps_for_a_video(page, tiny_run, tmp_path):
    video = sorted((tiny_run["videos"] / "test").rglob("*.mp4"))[0]
    page.set_file("#file", video)
    page.wait_for("document.querySelector('#maps img') !== null")
    heads = page.evaluate("[...document.querySelectorAll('#results .head h2')].map(h => h.textContent)")
    assert heads == ["head moves: top 2"]
    rows = page.evaluate("[...document.querySelectorAll('#results tr')].map(r => r.cells[0].textContent)")
    assert sorted(rows) == ["left", "right"]
    assert page.evaluate("document.querySelector('#maps img').naturalWidth") > 100  # the PNG decoded
    assert page.evaluate("getComputedStyle(document.getElementById('error')).display") == "none"
    shot = page.screenshot(tmp_path / "serve.png")
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("UNIDUAL_SCREENSHOT"):
        shutil.copy(shot, Path(os.environ["UNIDUAL_SCREENSHOT"]))


def test_page_shows_a_clear_message_for_a_bad_file(page, tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"not a video at all")
    page.set_file("#file", bad)
    message = page.wait_for(
        "getComputedStyle(document.getElementById('error')).display === 'block' && "
        "document.getElementById('error').textContent"
    )
    assert "holiday.mp4: not an image or video this model can read" in message
    assert page.evaluate("document.querySelectorAll('#results .head').length") == 0
