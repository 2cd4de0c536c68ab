"""The study's data: the builders a study file can name, built locations replace the configs', and the
three-source build keeps its pools disjoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from unidual.study.config import StudyError, study_from_dict
from unidual.study.data import build_three_source, fill_sources, prepare_data


def test_fill_sources_takes_locations_from_the_data():
    built = {
        "vid": {
            "key": "vid",
            "modality": "video",
            "format": "kinetics_csv",
            "root": "/abs/videos",
            "train": "train.csv",
            "test": "test.csv",
            "classes": ["a", "b"],
            "clip": {"frames": 16, "num_clips": 1, "stride": 1},
            "transform": {"flip": False},
        }
    }
    entry = {"key": "vid", "modality": "video", "format": "folder", "root": "relative/wrong", "clip": {"frames": 8}}
    (merged,) = fill_sources([entry], built, "cfg.yaml")
    assert (merged["format"], merged["root"], merged["train"], merged["classes"]) == (
        "kinetics_csv",
        "/abs/videos",
        "train.csv",
        ["a", "b"],
    )
    assert merged["clip"] == {"frames": 8, "num_clips": 1, "stride": 1}  # the config's sampling wins
    with pytest.raises(StudyError, match="cfg.yaml: sources.0: key 'img'"):
        fill_sources([{"key": "img"}], built, "cfg.yaml")
    with pytest.raises(StudyError, match="modality"):
        fill_sources([{"key": "vid", "modality": "image"}], built, "cfg.yaml")


def _photo_names(lines):
    return {line.rsplit(None, 1)[0].rsplit("/", 1)[-1] + "@" + line.rsplit(None, 1)[1] for line in lines}


def test_three_source_pools_are_disjoint(tmp_path, photos):
    out = tmp_path / "three"
    kwargs = dict(
        motions=("left", "right"),
        motions_b=("rotate_cw", "zoom_out"),
        frames=4,
        size=32,
        train_videos=4,
        test_videos=4,
        image_key="img",
        video_key="va",
        video_key_b="vb",
    )
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
        used_a = {
            f"{Path(pool_a.files[int(p.name[2:8])]).name}@{pool_a.classes[pool_a.labels[int(p.name[2:8])]]}"
            for p in (out / "a" / "videos" / split).rglob("*.mp4")
        }
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


def _study(tmp_path, data):
    raw = {
        "name": "t",
        "title": "t",
        "out": str(tmp_path / "out"),
        "data": data,
        "columns": [{"source": "motion"}],
        "models": [{"id": "a", "row": "A", "config": "a.yaml"}],
    }
    (tmp_path / "a.yaml").write_text("regime: separate\n")  # checked for existence only, never trained here
    return study_from_dict(raw, tmp_path / "study.yaml")


def test_default_build_is_the_demo_dataset(tmp_path):
    """``build: default`` writes the embedded shapes dataset (YAML lists become the builder's tuples)."""
    out = tmp_path / "shapes-data"
    data = {"build": "default", "out": str(out), "images_per_class": [2, 1], "videos_per_class": [1, 1]}
    built = prepare_data(_study(tmp_path, data))
    assert sorted(built) == ["motion", "shapes"]
    assert (built["shapes"]["modality"], built["motion"]["modality"]) == ("image", "video")
    assert built["shapes"]["root"] == str(out / "shapes") and len(built["motion"]["classes"]) == 16
    assert len(list((out / "shapes" / "train").glob("*/*.jpg"))) == 2 * 6
    assert len(list((out / "motion" / "test").glob("*/*.mp4"))) == 16


@pytest.mark.parametrize(
    "data, message",
    [
        ({"build": "default"}, r"data\.out is required for build: default"),
        ({"build": "motion", "out": "x"}, r"data\.image_root is required for build: motion"),
        (
            {"build": "default", "out": "x", "motions": ["left"]},
            r"unknown option\(s\) \['motions'\] for build: default",
        ),
        ({"build": "cifar", "out": "x"}, r"data\.build must be one of \['default', 'motion', 'three_source'\]"),
    ],
)
def test_bad_data_spec_names_the_study_file(tmp_path, data, message):
    with pytest.raises(StudyError, match=message) as info:
        prepare_data(_study(tmp_path, data))
    assert str(tmp_path / "study.yaml") in str(info.value)
    assert not (tmp_path / "x").exists()  # nothing built
