from __future__ import annotations

import json

from unidual.cli import main
from unidual.data.builtin import make_default_dataset
from unidual.data.check import check_dataset


def test_check_reports_counts_and_bad_files(tmp_path, capsys):
    make_default_dataset(tmp_path / "d", images_per_class=(3, 1), videos_per_class=(1, 1))
    assert main(["data", "check", str(tmp_path / "d"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usable"]
    motion = next(s for s in report["sources"] if s["key"] == "motion")
    assert motion["splits"]["train"]["frames"]["max"] == 8
    assert motion["splits"]["train"]["classes"]["circle left"] == 1
    # corrupt one image: the check names it and fails
    bad = next((tmp_path / "d" / "shapes" / "train" / "ring").iterdir())
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["data", "check", str(tmp_path / "d")]) == 1
    out = capsys.readouterr().out
    assert "NOT USABLE" in out and f"unreadable: {bad}" in out


def test_check_missing_path_is_not_usable(tmp_path):
    report = check_dataset(tmp_path / "nowhere")
    assert not report["usable"] and "not found" in report["error"]


def test_cli_make_default(tmp_path, capsys):
    assert main(["data", "make-default", str(tmp_path / "x")]) == 0
    assert "sources.yaml" in capsys.readouterr().out
    assert (tmp_path / "x" / "unidual-default.json").is_file()


def test_cli_build_motion(tmp_path, capsys):
    from tests.data.test_builtin import _photo_archive

    archive = _photo_archive(tmp_path)
    rc = main(["data", "build-motion", str(archive), str(tmp_path / "o"), "--motions", "up", "down",
               "--train-videos", "6", "--test-videos", "6", "--frames", "4"])
    assert rc == 0 and "6 classes" in capsys.readouterr().out
    assert main(["data", "build-motion", str(archive), str(tmp_path / "o2"), "--motions", "sideways"]) == 1
    assert "sideways" in capsys.readouterr().err


def test_check_plain_class_folder_without_test_split(tmp_path, capsys):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "imgs" / c / "x.png")  # tiny: flagged as suspicious
    report = check_dataset(tmp_path / "imgs")
    (src,) = report["sources"]
    assert report["usable"] and list(src["splits"]) == ["train"]
    assert src["splits"]["train"]["classes"] == {"a": 1, "b": 1}
    assert any("tiny image" in p["reason"] for p in src["splits"]["train"]["suspicious"])
