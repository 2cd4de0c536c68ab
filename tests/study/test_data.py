"""The study's data: built locations replace the configs', and the three-source build keeps its pools disjoint."""
from __future__ import annotations

from pathlib import Path

import pytest

from unidual.study.config import StudyError
from unidual.study.data import build_three_source, fill_sources


def test_fill_sources_takes_locations_from_the_data():
    built = {"vid": {"key": "vid", "modality": "video", "format": "kinetics_csv", "root": "/abs/videos",
                     "train": "train.csv", "test": "test.csv", "classes": ["a", "b"],
                     "clip": {"frames": 16, "num_clips": 1, "stride": 1}, "transform": {"flip": False}}}
    entry = {"key": "vid", "modality": "video", "format": "folder", "root": "relative/wrong",
             "clip": {"frames": 8}}
    (merged,) = fill_sources([entry], built, "cfg.yaml")
    assert (merged["format"], merged["root"], merged["train"], merged["classes"]) == \
        ("kinetics_csv", "/abs/videos", "train.csv", ["a", "b"])
    assert merged["clip"] == {"frames": 8, "num_clips": 1, "stride": 1}  # the config's sampling wins
    with pytest.raises(StudyError, match="cfg.yaml: sources.0: key 'img'"):
        fill_sources([{"key": "img"}], built, "cfg.yaml")
    with pytest.raises(StudyError, match="modality"):
        fill_sources([{"key": "vid", "modality": "image"}], built, "cfg.yaml")


def _photo_names(lines):
    return {line.rsplit(None, 1)[0].rsplit("/", 1)[-1] + "@" + line.rsplit(None, 1)[1] for line in lines}


def test_three_source_pools_are_disjoint(tmp_path, photos):
    out = tmp_path / "three"
    kwargs = dict(motions=("left", "right"), motions_b=("rotate_cw", "zoom_out"), frames=4, size=32,
                  train_videos=4, test_videos=4, image_key="img", video_key="va", video_key_b="vb")
    specs = build_three_source(photos, out, **kwargs)
    assert sorted(specs) == ["img", "va", "vb"]
    assert [specs[k].modality for k in ("img", "va", "vb")] == ["image", "video", "video"]
    assert specs["vb"].classes == ["blue rotate_cw", "blue zoom_out", "red rotate_cw", "red zoom_out"]
    for split in ("train", "test"):
        images = (out / "images" / f"{split}.txt").read_text().splitlines()
        a_images = (out / "a" / "images" / f"{split}.txt").read_text().splitlines()
        pool = {f"{p.name.split('_', 1)[1]}@{p.parent.name}" for p in (out / "pool-b" / split).glob("*/*.jpg")}
        # A's video files are named <label:02d><photo index:06d>_...: map them back to their photos
        from unidual.data.sources import SourceDataset, SourceSpec

        pool_a = SourceDataset(SourceSpec(key="p", modality="image", format="folder", root=str(photos)), split)
        used_a = {f"{Path(pool_a.files[int(p.name[2:8])]).name}@{pool_a.classes[pool_a.labels[int(p.name[2:8])]]}"
                  for p in (out / "a" / "videos" / split).rglob("*.mp4")}
        assert len(used_a) == 4
        mine = _photo_names(images)
        assert not (used_a & mine) and not (used_a & pool)
        # pool B came out of A's image split, and the image source no longer holds it
        assert pool and pool <= _photo_names(a_images) and not (pool & mine)
        assert len(mine) + len(pool) == len(a_images)
        assert len(list((out / "b" / "videos" / split).rglob("*.mp4"))) == 4
    marker = (out / "unidual-three-source.json").stat().st_mtime_ns
    again = build_three_source(photos, out, **kwargs)  # reused, not rebuilt
    assert (out / "unidual-three-source.json").stat().st_mtime_ns == marker
    assert again["img"].train == specs["img"].train
