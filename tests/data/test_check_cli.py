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
    rc = main(
        [
            "data",
            "build-motion",
            str(archive),
            str(tmp_path / "o"),
            "--motions",
            "up",
            "down",
            "--train-videos",
            "6",
            "--test-videos",
            "6",
            "--frames",
            "4",
        ]
    )
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


def _faststart_mp4(path, n: int = 60) -> None:
    """An H.264 mp4 with its index (moov) before the data, as downloaded clips usually are."""
    from fractions import Fraction

    import av
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (n, 32, 48, 3), dtype=np.uint8)  # no compression: data >> index
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for rgb in noise:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _truncate(path, share: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


def test_check_plain_folder_file_by_file_fast_and_deep_catch_truncation(tmp_path, capsys):
    """A folder of videos without class folders: every file checked; a truncated mp4 whose header still
    says 60 frames is unreadable in both modes (the old check decoded first + last frame and passed it)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "cut.mp4"):
        _faststart_mp4(folder / name)
    _truncate(folder / "cut.mp4", 0.3)
    (folder / "README.md").write_text("not a video")
    (folder / "more").mkdir()
    _faststart_mp4(folder / "more" / "c.mp4", n=5)  # sub-folders of a plain folder are checked too
    for deep in (False, True):
        for workers in (1, 2):
            report = check_dataset(folder, deep=deep, workers=workers)
            (src,) = report["sources"]
            files = src["splits"]["files"]
            assert not report["usable"] and src["format"] == "files"
            assert files["checked"] == 4 and files["readable"] == 3 and files["frames"]["max"] == 60
            (bad,) = files["unreadable"]
            assert bad["path"].endswith("cut.mp4")
            assert (
                ("header says 60 frames" in bad["reason"])
                if not deep
                else ("decoded frames" in bad["reason"] or "header says 60" in bad["reason"])
            )
    assert main(["data", "check", str(folder), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "NOT USABLE (fast check)" in out and "files: 3/4 readable" in out and "cut.mp4: truncated" in out
    (folder / "cut.mp4").unlink()
    assert main(["data", "check", str(folder), "--deep", "--workers", "1"]) == 0
    assert main(["data", "check", str(folder), "--workers", "0"]) == 2


def test_check_real_truncated_clip(shared_data, tmp_path):
    """car-detection.mp4 (377 frames) cut to a twelfth: fast mode reads only packets, still finds it."""
    src = shared_data / "videos" / "intel-samples" / "car-detection.mp4"
    (tmp_path / "v").mkdir()
    cut = tmp_path / "v" / "car.mp4"
    cut.write_bytes(src.read_bytes())
    _truncate(cut, 1 / 12)
    (tmp_path / "v" / "whole.mp4").write_bytes(src.read_bytes())
    report = check_dataset(tmp_path / "v")
    files = report["sources"][0]["splits"]["files"]
    assert files["readable"] == 1
    assert files["unreadable"][0]["reason"].startswith("truncated: header says 377 frames, only ")


def test_check_fast_mode_catches_a_truncated_jpeg(tmp_path):
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    for name in ("a.jpg", "cut.jpg"):
        Image.fromarray(noise).save(tmp_path / name, quality=90)
    _truncate(tmp_path / "cut.jpg", 0.6)
    for deep in (False, True):
        files = check_dataset(tmp_path, deep=deep)["sources"][0]["splits"]["files"]
        assert files["readable"] == 1 and files["unreadable"][0]["path"].endswith("cut.jpg")
        assert "truncated" in files["unreadable"][0]["reason"]
