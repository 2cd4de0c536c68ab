"""Datasets laid out the way their tools leave them: mmaction2 per-split folders, raw frames, sources files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.data.conftest import counter_frames, frame_ids
from unidual.data import DataError
from unidual.data.check import check_dataset
from unidual.data.encode import write_video
from unidual.data.missing import report_missing
from unidual.data.sources import SourceSpec, build_dataset
from unidual.evaluate.commands import parse_data_args, source_specs
from unidual.train.config import ConfigError, load_config

CUSTOM = {"protocol": "custom", "resize": 16, "crop": 16}


def _mmaction_tiny(root: Path) -> Path:
    """mmaction2's kinetics400_tiny: train/*.mp4, val/*.mp4, lists beside them relative to each split folder."""
    tiny = root / "kinetics400_tiny"
    for split, names in (("train", ["D32_1gwq35E.mp4", "iRuyZSKhHRg.mp4"]), ("val", ["0pVGiAU6XEA.mp4"])):
        for i, name in enumerate(names):
            write_video(tiny / split / name, counter_frames(12 + i), fps=10)
    (tiny / "kinetics_tiny_train_video.txt").write_text("D32_1gwq35E.mp4 0\niRuyZSKhHRg.mp4 1\n")
    (tiny / "kinetics_tiny_val_video.txt").write_text("0pVGiAU6XEA.mp4 1\n")
    return tiny


def _tiny_spec(tiny: Path, **kw) -> dict:
    return dict(
        key="k",
        modality="video",
        format="mmaction_list",
        root=str(tiny),
        train_root=str(tiny / "train"),
        test_root=str(tiny / "val"),
        train="kinetics_tiny_train_video.txt",
        test="kinetics_tiny_val_video.txt",
        clip={"frames": 4, "num_clips": 2},
        transform=CUSTOM,
        **kw,
    )


def test_mmaction2_tiny_kinetics_layout_with_per_split_roots(tmp_path):
    tiny = _mmaction_tiny(tmp_path)
    spec = SourceSpec.from_dict(_tiny_spec(tiny))
    train, test = build_dataset(spec, "train"), build_dataset(spec, "test")
    assert [Path(p).relative_to(tiny).as_posix() for p in train.files] == [
        "train/D32_1gwq35E.mp4",
        "train/iRuyZSKhHRg.mp4",
    ]
    assert [Path(p).relative_to(tiny).as_posix() for p in test.files] == ["val/0pVGiAU6XEA.mp4"]
    assert train.labels == [0, 1] and test.labels == [1] and test.classes == ["0", "1"]
    assert train[1]["input"].shape == (3, 4, 16, 16) and test[0]["input"].shape == (2, 3, 4, 16, 16)
    # without per-split roots the list paths resolve against root, where the files are not
    with pytest.raises(DataError, match=r"2 of 2 listed files missing: .*kinetics_tiny_train_video.txt:1"):
        build_dataset(SourceSpec.from_dict({**_tiny_spec(tiny), "train_root": None}), "train")


def test_folder_format_with_per_split_roots_holding_class_folders(tmp_path):
    for split, n in (("images_train", 3), ("images_val", 1)):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (20, 20), (9 * i, 0, 0)).save(tmp_path / split / c / f"{i}.png")
    spec = SourceSpec.from_dict(
        dict(
            key="i",
            modality="image",
            format="folder",
            root=str(tmp_path),
            train_root=str(tmp_path / "images_train"),
            test_root=str(tmp_path / "images_val"),
            transform=CUSTOM,
        )
    )
    assert len(build_dataset(spec, "train")) == 6
    test = build_dataset(spec, "test")
    assert len(test) == 2 and test.classes == ["cat", "dog"] and "images_val" in test.files[0]
    (tmp_path / "sources.yaml").write_text(
        yaml.safe_dump([{**spec.to_dict(), "train_root": "images_train", "test_root": "images_val"}])
    )
    report = check_dataset(tmp_path / "sources.yaml")  # relative roots beside the file; both splits checked
    assert report["usable"] and {k: v["readable"] for k, v in report["sources"][0]["splits"].items()} == {
        "train": 6,
        "test": 2,
    }


def _rawframes(root: Path, name: str, n: int) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    for t, frame in enumerate(counter_frames(n, 24, 24)):
        Image.fromarray(frame).save(folder / f"img_{t + 1:05d}.png")


def test_mmaction_rawframes_format_samples_clips_like_videos(tmp_path):
    _rawframes(tmp_path / "rawframes", "vid_a", 20)
    _rawframes(tmp_path / "rawframes", "vid_b", 6)
    (tmp_path / "train_list_rawframes.txt").write_text("vid_a 20 0\nvid_b 6 2\nvid_gone 9 1\n")
    # mmaction2's habit: annotation lists in the dataset folder, frames under rawframes/ (the data_prefix)
    base = dict(
        key="sth",
        modality="video",
        format="mmaction_rawframes",
        root=str(tmp_path),
        train_root=str(tmp_path / "rawframes"),
        test_root=str(tmp_path / "rawframes"),
        train="train_list_rawframes.txt",
        test="train_list_rawframes.txt",
        filename_tmpl="img_{:05d}.png",
        clip={"frames": 4, "stride": 2, "num_clips": 3},
        skip_missing=True,
        transform={
            "protocol": "custom",
            "resize": None,
            "crop": None,
            "flip": False,
            "mean": [0, 0, 0],
            "std": [1, 1, 1],
        },
    )
    train = build_dataset(base, "train")
    assert len(train) == 2 and train.classes == ["0", "1", "2"] and train.missing[0].endswith("vid_gone")
    assert train.video_info(0).num_frames == 20
    for _ in range(5):
        x = train[0]["input"]  # (3, 4, 24, 24), pixels in [0, 1]; red channel = 10 * frame / 255
        ids = frame_ids((x.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8))
        assert np.diff(ids).tolist() == [2, 2, 2] and 0 <= ids[0] <= 14
    test = build_dataset(base, "test")
    x = test[0]["input"]
    assert x.shape == (3, 3, 4, 24, 24)
    starts = [frame_ids((c.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8))[0] for c in x]
    assert starts == [clip[0] for clip in test.clip_indices(0)] == [2, 6, 11]
    # a folder shorter than a clip is looped like a short video
    assert test.clip_indices(1)[0] == [0, 2, 4, 0]
    short = test[1]["input"][0].permute(1, 2, 3, 0).numpy()
    assert frame_ids((short * 255).round().astype(np.uint8)) == [0, 2, 4, 0]
    with pytest.raises(DataError, match="mmaction_rawframes is a video format"):
        SourceSpec.from_dict({**base, "modality": "image"})
    (tmp_path / "bad.txt").write_text("vid_a twenty 0\n")
    with pytest.raises(DataError, match=r"bad.txt:1: expected 'frame_dir total_frames label'"):
        build_dataset({**base, "train": "bad.txt"}, "train")
    (tmp_path / "rawframes" / "vid_a" / "img_00003.png").unlink()
    with pytest.raises(DataError, match="img_00003.png: file not found"):
        train.read_rawframes(0, [0, 1, 2])
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump([base]))
    report = check_dataset(tmp_path / "sources.yaml", splits=("train",))
    split = report["sources"][0]["splits"]["train"]
    assert not report["usable"] and split["readable"] == 1 and len(split["missing"]) == 1
    assert split["unreadable"] == [
        {"path": str(tmp_path / "rawframes" / "vid_a"), "reason": "1 of 20 frame files missing (first: img_00003.png)"}
    ]


def test_sources_file_in_train_config_data_check_and_eval(tmp_path, monkeypatch):
    tiny = _mmaction_tiny(tmp_path / "data")
    spec = _tiny_spec(tiny)
    spec.update(root="kinetics400_tiny", train_root="kinetics400_tiny/train", test_root="kinetics400_tiny/val")
    (tmp_path / "data" / "sources.yaml").write_text(yaml.safe_dump([spec]))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "train.yaml").write_text(
        "regime: separate\nmodel: {name: r2plus1d}\nsources: ../data/sources.yaml\n"
    )
    monkeypatch.chdir(tmp_path / "cfg")  # relative roots resolve beside the sources file, not here
    cfg = load_config(tmp_path / "cfg" / "train.yaml")
    assert cfg.sources[0].train_root == str(tiny / "train")
    assert len(build_dataset(cfg.sources[0], "train")) == 2
    report = check_dataset(tmp_path / "data" / "sources.yaml")
    assert report["usable"] and report["sources"][0]["splits"]["test"]["readable"] == 1
    data = parse_data_args([str(tmp_path / "data" / "sources.yaml")])
    specs = source_specs({"sources": {"k": {"modality": "video"}}, "config": {"sources": []}}, data)
    assert specs["k"]["test_root"] == str(tiny / "val")
    (tmp_path / "cfg" / "bad.yaml").write_text("sources: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="sources: 'nowhere.yaml' not found"):
        load_config(tmp_path / "cfg" / "bad.yaml")


def test_eval_data_file_with_a_source_without_key_is_a_clear_error(tmp_path):
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump([{"modality": "video", "format": "folder", "root": "v"}]))
    with pytest.raises(ValueError, match=r"sources.yaml: a source has no 'key' \(got None\)"):
        parse_data_args([str(tmp_path / "sources.yaml")])


def test_missing_files_are_summarised_once_with_the_full_list_written(tmp_path):
    tiny = _mmaction_tiny(tmp_path)
    listing = "".join(f"gone_{i}.mp4 0\n" for i in range(5)) + "D32_1gwq35E.mp4 0\n"
    (tiny / "kinetics_tiny_train_video.txt").write_text(listing)
    ds = build_dataset(_tiny_spec(tiny, skip_missing=True), "train")
    assert len(ds) == 1 and len(ds.missing) == 5
    (line,) = report_missing({"k": ds}, "train", tmp_path / "run")
    assert line == (
        f"source 'k' train: 5 of 6 listed files missing, dropped (gone_0.mp4, gone_1.mp4, gone_2.mp4, "
        f"...); full list: {tmp_path / 'run' / 'missing_k_train.txt'}"
    )
    written = (tmp_path / "run" / "missing_k_train.txt").read_text().splitlines()
    assert len(written) == 5 and written[4].endswith("gone_4.mp4") and ":5:" in written[4]
