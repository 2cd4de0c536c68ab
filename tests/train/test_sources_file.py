"""A train config naming a sources.yaml; listed files that are missing are dropped once, with one line."""

from __future__ import annotations

from pathlib import Path

import yaml
from helpers.tinydata import tiny_config

from unidual.cli import main as cli


def test_train_from_a_sources_file_drops_missing_files_once(tiny_sources, tmp_path, capsys):
    image, video = (dict(s) for s in tiny_sources)
    root = Path(video["root"])
    listed = sorted((root / "train").rglob("*.mp4"))
    lines = [f"{p.relative_to(root)} {p.parent.name}" for p in listed]
    lines += [f"train/left/gone_{i}.mp4 left" for i in range(4)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vid_train.txt").write_text("\n".join(lines) + "\n")
    test_list = [f"{p.relative_to(root / 'test')} {p.parent.name}" for p in sorted((root / "test").rglob("*.mp4"))]
    (tmp_path / "data" / "vid_test.txt").write_text("\n".join(test_list) + "\n")
    # a list format with per-split roots: test paths are relative to test_root
    video.update(
        format="list",
        train=str(tmp_path / "data" / "vid_train.txt"),
        skip_missing=True,
        test=str(tmp_path / "data" / "vid_test.txt"),
        test_root=str(root / "test"),
    )
    (tmp_path / "data" / "sources.yaml").write_text(yaml.safe_dump([image, video]))
    config = tiny_config([], schedule={"epochs": 2})
    config["sources"] = "../data/sources.yaml"
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert cli(["train", str(tmp_path / "cfg" / "c.yaml"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    summary = [line for line in err.splitlines() if "listed files missing" in line]
    assert summary == [
        f"warning: source 'vid' train: 4 of {len(lines)} listed files missing, dropped "
        f"(gone_0.mp4, gone_1.mp4, gone_2.mp4, ...); full list: {out / 'missing_vid_train.txt'}"
    ]
    assert "gone_" not in err.replace(summary[0], "")  # no per-file warning in any epoch
    assert len((out / "missing_vid_train.txt").read_text().splitlines()) == 4
    saved = yaml.safe_load((out / "config.yaml").read_text())["sources"]
    assert [s["key"] for s in saved] == ["img", "vid"] and saved[1]["skip_missing"] is True
