"""`unidual serve` over real HTTP: a uvicorn server on a free loopback port, spoken to with http.client."""

from __future__ import annotations

import base64
import json
import sys

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'unidual[serve]')")
pytest.importorskip("multipart", reason="the serve extra is not installed (pip install 'unidual[serve]')")
from helpers.serving import post_file, request, running

from unidual.cli import main as cli
from unidual.serve.app import create_app

LIMIT_MB = 0.25


@pytest.fixture(scope="module")
def server(tiny_run):
    with running(create_app(tiny_run["checkpoint"], max_upload_mb=LIMIT_MB, timeout=120)) as url:
        yield url


def _first(folder) -> bytes:
    return sorted(folder.rglob("*.*"))[0].read_bytes()


def test_page_and_info(server):
    status, page = request(server + "/")
    assert status == 200 and 'type="file"' in page and "api/predict?maps=1" in page
    status, info = request(server + "/api/info")
    assert status == 200 and info["model"] == "unidual_aux"
    assert info["heads"] == {"shapes": 3, "moves": 2} and info["max_upload_mb"] == LIMIT_MB


def test_image_prediction_equals_unidual_predict(server, tiny_run, capsys):
    image = sorted((tiny_run["images"] / "test").rglob("*.png"))[0]
    status, got = post_file(server + "/api/predict", "photo.png", image.read_bytes())
    assert status == 200 and got["modality"] == "image" and got["path"] == "photo.png"
    assert list(got["top"]) == ["shapes"] and len(got["top"]["shapes"]) == 3  # 3 classes, top-5 asked
    assert cli(["predict", str(tiny_run["checkpoint"]), str(image), "--json"]) == 0
    (expected,) = json.loads(capsys.readouterr().out)
    assert got["top"] == expected["top"]
    assert "maps_png" not in got  # feature maps are for videos, and only when asked


def test_video_prediction_with_feature_maps(server, tiny_run):
    video = sorted((tiny_run["videos"] / "test").rglob("*.mp4"))[0]
    status, got = post_file(server + "/api/predict?maps=1&topk=1", "clip.mp4", video.read_bytes())
    assert status == 200 and got["modality"] == "video" and len(got["top"]["moves"]) == 1
    assert base64.b64decode(got["maps_png"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_bad_file_is_a_4xx_json_error_and_the_server_lives_on(server, tiny_run):
    status, got = post_file(server + "/api/predict", "broken.mp4", b"this is not a video" * 10)
    assert status == 422 and "broken.mp4: not an image or video this model can read" in got["error"]
    assert "unidual-serve-" not in got["error"]  # the temporary copy's path stays on the server
    status, got = post_file(server + "/api/predict", "empty.jpg", b"")
    assert status == 422 and "empty.jpg" in got["error"]
    image = sorted((tiny_run["images"] / "test").rglob("*.png"))[0]
    assert post_file(server + "/api/predict", "ok.png", image.read_bytes())[0] == 200


def test_malformed_requests_are_400(server):
    status, got = post_file(server + "/api/predict", "x.png", b"abc", field="upload")
    assert status == 400 and "multipart field 'file'" in got["error"]
    status, got = request(server + "/api/predict", "POST", b"{}", {"Content-Type": "application/json"})
    assert status == 400 and "no file" in got["error"]
    status, got = post_file(server + "/api/predict?topk=0", "x.png", b"abc")
    assert status == 400 and "topk" in got["error"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_over_the_limit_is_413(server, chunked):
    big = b"\0" * int(LIMIT_MB * 1024 * 1024 + 100_000)
    status, got = post_file(server + "/api/predict", "big.mp4", big, chunked=chunked)
    assert status == 413 and f"over the {LIMIT_MB:g} MB limit" in got["error"]


def test_overrunning_file_is_cut_off_and_the_worker_replaced(tiny_run):
    app = create_app(tiny_run["checkpoint"], timeout=0.05)
    video = sorted((tiny_run["videos"] / "test").rglob("*.mp4"))[0]
    with running(app) as url:
        first = app.state.worker._pool
        status, got = post_file(url + "/api/predict?maps=1", "slow.mp4", video.read_bytes())
        assert status == 422 and "took longer than 0.05 s; stopped" in got["error"]
        assert app.state.worker._pool is not first  # the child was killed and a fresh one started
        assert request(url + "/api/info")[0] == 200


def test_command_defaults_to_loopback_and_fails_cleanly(tmp_path, capsys, monkeypatch):
    from unidual.cli import _command_parser

    args = _command_parser("serve").parse_args(["run"])
    assert args.host == "127.0.0.1"
    assert cli(["serve", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such checkpoint" in err
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # the extra not installed
    assert cli(["serve", str(tmp_path / "nothing")]) == 2
    assert "pip install 'unidual[serve]'" in capsys.readouterr().err
