from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unidual.data import build_dataset
from unidual.data.builtin import SHAPES, _moving_centres, make_default_dataset, read_sources
from unidual.data.decode import probe_video
from unidual.data.errors import DataError
from unidual.data.motion import _motion_frames, build_motion_dataset

SMALL = dict(images_per_class=(4, 2), videos_per_class=(2, 1))


def test_default_dataset_layout_and_cache(tmp_path):
    specs = make_default_dataset(tmp_path / "d", seed=1, **SMALL)
    assert set(specs) == {"shapes", "motion"}
    images, videos = build_dataset(specs["shapes"], "train"), build_dataset(specs["motion"], "test")
    assert len(images) == 24 and len(images.classes) == 6
    assert len(videos) == 16 and videos.classes[0] == "circle left"
    assert {c.split(" ")[0] for c in videos.classes} <= set(images.classes)  # image appearance classes help
    assert probe_video(videos.files[0]).num_frames == 8
    assert videos[0]["input"].shape == (1, 3, 8, 32, 32)
    assert not specs["motion"].transform.flip  # a flip would swap left/right labels
    stamp = (tmp_path / "d" / "unidual-default.json").stat().st_mtime_ns
    again = make_default_dataset(tmp_path / "d", seed=1, **SMALL)
    assert (tmp_path / "d" / "unidual-default.json").stat().st_mtime_ns == stamp and again.keys() == specs.keys()


def test_default_dataset_labels_videos_by_shape_on_request(tmp_path):
    """``video_labels="class"``: the images' 6 classes, every shape moving (so the motion is there but
    not in the label); the default dataset's files and marker are another dataset's."""
    specs = make_default_dataset(tmp_path / "c", seed=1, video_labels="class", **SMALL)
    images, videos = build_dataset(specs["shapes"], "train"), build_dataset(specs["motion"], "train")
    assert videos.classes == images.classes and len(videos) == 2 * 6
    clip = videos[0]["input"][0]  # (3, T, H, W): the shape moves between the first and the last frame
    assert (clip[:, 0] - clip[:, -1]).abs().mean() > 0.05
    default = make_default_dataset(tmp_path / "c", seed=1, **SMALL)  # other settings: generated again
    assert build_dataset(default["motion"], "train").classes[0] == "circle left"
    with pytest.raises(DataError, match="video_labels must be one of"):
        make_default_dataset(tmp_path / "x", video_labels="motion")


def test_make_default_cli_takes_the_counts_per_class(tmp_path, capsys):
    from unidual.cli import main

    assert (
        main(
            [
                "data",
                "make-default",
                str(tmp_path / "d"),
                "--images-per-class",
                "3",
                "1",
                "--videos-per-class",
                "1",
                "2",
            ]
        )
        == 0
    )
    specs = make_default_dataset(tmp_path / "d", images_per_class=(3, 1), videos_per_class=(1, 2))  # reused as is
    assert len(build_dataset(specs["shapes"], "train")) == 18 and len(build_dataset(specs["motion"], "train")) == 16
    assert len(build_dataset(specs["motion"], "test")) == 32
    assert main(["data", "make-default", str(tmp_path / "e"), "--videos-per-class", "0", "2"]) == 2
    assert "--videos-per-class" in capsys.readouterr().err and not (tmp_path / "e").exists()
    args = ["--images-per-class", "1", "1", "--videos-per-class", "1", "1", "--video-labels", "class"]
    assert main(["data", "make-default", str(tmp_path / "f"), *args]) == 0
    written = read_sources(tmp_path / "f" / "sources.yaml")  # what the command wrote, not regenerated here
    assert written["motion"]["classes"] == written["shapes"]["classes"] == list(SHAPES)


def test_default_dataset_is_deterministic(tmp_path):
    make_default_dataset(tmp_path / "a", seed=3, **SMALL)
    make_default_dataset(tmp_path / "b", seed=3, **SMALL)
    make_default_dataset(tmp_path / "c", seed=4, **SMALL)
    name = "shapes/train/ring/0002.jpg"
    a, b, c = (np.asarray(Image.open(tmp_path / d / name)) for d in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_motion_direction_needs_time():
    rng = np.random.default_rng(0)
    lefts = [_moving_centres(rng, "left", 8, 32, 5.0) for _ in range(200)]
    rights = [_moving_centres(rng, "right", 8, 32, 5.0) for _ in range(200)]
    assert all(p[-1][0] < p[0][0] for p in lefts) and all(p[-1][0] > p[0][0] for p in rights)
    # the set of positions a frame can show is the same for both directions: one frame cannot tell them apart
    assert abs(np.mean([x for p in lefts for x, _ in p]) - np.mean([x for p in rights for x, _ in p])) < 1.0


def test_motion_frames_pan_and_zoom():
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    import random

    left = _motion_frames(photo, "left", 8, 32, random.Random(0))
    right = _motion_frames(photo, "right", 8, 32, random.Random(0))
    assert left.shape == (8, 32, 32, 3)
    assert np.array_equal(left[0], right[-1]) and np.array_equal(left[-1], right[0])  # time-reversed twins
    zin = _motion_frames(photo, "zoom_in", 8, 32, random.Random(0))
    zout = _motion_frames(photo, "zoom_out", 8, 32, random.Random(0))
    assert np.array_equal(zin[0], zout[-1])


def _photo_archive(tmp_path: Path, classes=("a", "b", "c"), per=(12, 8)) -> Path:
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root, arcname=".")
    return archive


def test_motion_dataset_pools_are_disjoint(tmp_path):
    archive = _photo_archive(tmp_path)
    specs = build_motion_dataset(
        archive,
        tmp_path / "out",
        motions=("left", "right"),
        train_videos=12,
        test_videos=6,
        image_key="img",
        video_key="vid",
    )
    img_train, img_test = build_dataset(specs["img"], "train"), build_dataset(specs["img"], "test")
    vid_train, vid_test = build_dataset(specs["vid"], "train"), build_dataset(specs["vid"], "test")
    assert vid_train.classes == ["a left", "a right", "b left", "b right", "c left", "c right"]
    assert len(vid_train) == 12 and len(vid_test) == 6
    assert len(img_train) == 3 * (12 - 4) and len(img_test) == 3 * (8 - 2)
    # each video's photo id is encoded in its name; none of them is in the image splits
    used = {int(Path(f).name[2:8]) for f in vid_train.files}
    train_photos = build_dataset(dict(key="p", modality="image", format="folder", root=str(archive)), "train")
    image_files = set(img_train.files)
    assert not {train_photos.files[i] for i in used} & image_files
    assert img_train[0]["input"].shape == (3, 32, 32) and vid_train[0]["input"].shape == (3, 8, 32, 32)
    assert (tmp_path / "out" / "sources.yaml").is_file()


def test_motion_dataset_from_real_cifar(shared_data, tmp_path):
    specs = build_motion_dataset(
        shared_data / "images" / "cifar10-jpeg.tar.gz",
        tmp_path / "m",
        train_videos=30,
        test_videos=30,
        image_train=200,
        image_test=100,
    )
    assert set(specs) == {"cifar", "motion"} and len(specs["motion"].classes) == 30
    vids = build_dataset(specs["motion"], "train")
    imgs = build_dataset(specs["cifar"], "test")
    assert len(vids) == 30 and len(imgs) == 100 and imgs.classes[0] == "airplane"
