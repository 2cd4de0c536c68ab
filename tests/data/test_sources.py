from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.data.conftest import counter_frames
from unidual.data import DataError
from unidual.data.encode import write_video
from unidual.data.sources import SourceSpec, build_dataset, load_label_maps, save_label_maps


def _image_tree(root: Path, classes=("cat", "dog"), per_class=3, splits=("train", "test")) -> Path:
    for split in splits:
        for c, name in enumerate(classes):
            for i in range(per_class):
                (root / split / name).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (40, 30), (100 * c, 10 * i, 50)).save(root / split / name / f"{i}.jpg")
    return root


def _spec(**kw) -> SourceSpec:
    base = dict(
        key="src", modality="image", format="folder", transform={"protocol": "custom", "resize": 16, "crop": 16}
    )
    base.update(kw)
    return SourceSpec.from_dict(base)


def test_image_folder_and_item_layout(tmp_path):
    root = _image_tree(tmp_path / "imgs")
    ds = build_dataset(_spec(root=str(root)), "train")
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    item = ds[4]
    assert item["input"].shape == (3, 16, 16) and item["input"].dtype == torch.float32
    assert item["label"] == 1 and item["source"] == "src" and item["index"] == 4


def test_image_folder_from_tar_gz_matches_directory(tmp_path):
    root = _image_tree(tmp_path / "imgs")
    archive = tmp_path / "imgs.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root / "train", arcname="train")
        tf.add(root / "test", arcname="test")
    plain = tmp_path / "imgs.tar"
    with tarfile.open(plain, "w") as tf:
        tf.add(root / "train", arcname="train")
    torch.manual_seed(0)
    a = build_dataset(_spec(root=str(root), transform={"protocol": "custom", "flip": False}), "train")
    b = build_dataset(_spec(root=str(archive), transform={"protocol": "custom", "flip": False}), "train")
    c = build_dataset(_spec(root=str(plain), transform={"protocol": "custom", "flip": False}), "train")
    assert a.classes == b.classes == c.classes and len(a) == len(b) == len(c)
    for i in range(len(a)):
        assert torch.equal(a[i]["input"], b[i]["input"]) and torch.equal(a[i]["input"], c[i]["input"])
    assert "::train/cat/0.jpg" in b.files[0]


def test_list_file_with_names_and_indices(tmp_path):
    root = _image_tree(tmp_path / "imgs")
    (tmp_path / "imgs" / "train.txt").write_text("train/cat/0.jpg cat\ntrain/dog/1.jpg dog\n")
    (tmp_path / "imgs" / "test.txt").write_text("test/dog/2.jpg 1\n")
    spec = _spec(root=str(root), format="list", train="train.txt", test="test.txt")
    train, test = build_dataset(spec, "train"), build_dataset(spec, "test")
    assert train.labels == [0, 1] and test.classes == ["cat", "dog"] and test.labels == [1]


def test_list_file_beside_the_root_wins_then_working_directory(tmp_path, monkeypatch):
    root = _image_tree(tmp_path / "imgs")
    work = tmp_path / "work"
    (work / "lists").mkdir(parents=True)
    (work / "lists" / "train.txt").write_text("train/dog/0.jpg dog\n")  # only in the working directory
    monkeypatch.chdir(work)
    spec = _spec(root=str(root), format="list", train="lists/train.txt")
    assert build_dataset(spec, "train").labels == [0] and build_dataset(spec, "train").classes == ["dog"]
    (root / "lists").mkdir()
    (root / "lists" / "train.txt").write_text("train/cat/0.jpg cat\ntrain/dog/1.jpg dog\n")  # beside the data
    assert build_dataset(spec, "train").labels == [0, 1]
    missing = _spec(root=str(root), format="list", train="lists/nope.txt")
    with pytest.raises(
        DataError,
        match=r"list file 'lists/nope.txt' not found \(looked for .*imgs/lists/nope.txt or "
        r".*work/lists/nope.txt\)",
    ):
        build_dataset(missing, "train")


def test_test_split_reuses_given_label_map(tmp_path):
    root = _image_tree(tmp_path / "imgs")
    ds = build_dataset(_spec(root=str(root)), "test", classes=["dog", "cat"])
    assert ds.classes == ["dog", "cat"] and ds.labels[0] == 1  # first file is a cat


def test_label_map_json_roundtrip(tmp_path):
    save_label_maps(tmp_path / "labels.json", {"a": ["x", "y"], "b": ["z"]})
    assert load_label_maps(tmp_path / "labels.json") == {"a": ["x", "y"], "b": ["z"]}


def test_unknown_keys_rejected():
    with pytest.raises(DataError, match="unknown key"):
        SourceSpec.from_dict(dict(key="a", modality="image", format="folder", root=".", colour=1))
    with pytest.raises(DataError, match="unknown key"):
        SourceSpec.from_dict(dict(key="a", modality="image", format="folder", root=".", clip={"frame": 8}))


def test_kinetics_csv_naming_conventions(tmp_path):
    root = tmp_path / "k"
    frames = counter_frames(12)
    write_video(root / "train" / "arm wrestling" / "abc_000010_000020.mp4", frames, fps=4)
    write_video(root / "xyz_000001_000004.mp4", frames, fps=4)
    write_video(root / "untrimmed" / "qqq.mp4", counter_frames(24), fps=4)  # 6 s long, window 2..4 s
    (root / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "arm wrestling,abc,10,20,train\n"
        "juggling,xyz,1,4,train\n"
        "juggling,qqq,2,4,train\n"
        "juggling,nope,1,2,validate\n"
    )
    spec = SourceSpec.from_dict(
        dict(
            key="k",
            modality="video",
            format="kinetics_csv",
            root=str(root),
            train="train.csv",
            clip={"frames": 4, "num_clips": 2},
            transform={"protocol": "custom", "crop": 32},
        )
    )
    ds = build_dataset(spec, "train")
    assert ds.classes == ["arm wrestling", "juggling"] and ds.labels == [0, 1, 1]
    assert ds.entries[2].window == (2.0, 4.0)
    # the untrimmed video only samples inside its window: frames 8..15
    for _ in range(10):
        (clip,) = ds.clip_indices(2)
        assert all(8 <= i < 16 for i in clip)
    assert ds[0]["input"].shape == (3, 4, 32, 32)


def test_mmaction_list_video_test_views(tmp_path):
    write_video(tmp_path / "a" / "1.mp4", counter_frames(20), fps=10)
    write_video(tmp_path / "b" / "2.mp4", counter_frames(6), fps=10)  # shorter than a clip: looped
    (tmp_path / "list.txt").write_text("a/1.mp4 0\nb/2.mp4 2\n")
    spec = SourceSpec.from_dict(
        dict(
            key="m",
            modality="video",
            format="mmaction_list",
            root=str(tmp_path),
            train="list.txt",
            test="list.txt",
            clip={"frames": 8, "num_clips": 3},
            transform={"protocol": "custom", "resize": 24, "crop": 24, "test_crops": 3},
        )
    )
    test = build_dataset(spec, "test")
    assert test.classes == ["0", "1", "2"]
    x = test[1]["input"]
    assert x.shape == (9, 3, 8, 24, 24)  # 3 clips x 3 crops, clip-major
    train = build_dataset(spec, "train")
    assert train[0]["input"].shape == (3, 8, 24, 24)


def test_real_cifar_archive(shared_data):
    spec = SourceSpec.from_dict(
        dict(
            key="cifar",
            modality="image",
            format="folder",
            root=str(shared_data / "images" / "cifar10-jpeg.tar.gz"),
            transform={"protocol": "custom", "crop": 32},
        )
    )
    test = build_dataset(spec, "test")
    assert len(test) == 10_000 and test.classes[0] == "airplane" and test.classes[-1] == "truck"
    assert test[9_999]["label"] == 9 and test[0]["input"].shape == (3, 32, 32)


def test_real_videos_protocol_a(shared_data, tmp_path):
    root = shared_data / "videos" / "kinetics-samples"
    (tmp_path / "l.txt").write_text("demo.mp4 0\ntest.avi 1\n")
    spec = SourceSpec.from_dict(
        dict(
            key="k",
            modality="video",
            format="mmaction_list",
            root=str(root),
            train=str(tmp_path / "l.txt"),
            clip={"frames": 4, "stride": 2},
        )
    )
    ds = build_dataset(spec, "train")
    for i in range(2):
        x = ds[i]["input"]
        assert x.shape == (3, 4, 112, 112) and torch.isfinite(x).all() and x.std() > 0.1


@pytest.mark.parametrize("protocol", ["A", "B", "custom"])
def test_spec_dict_roundtrip(protocol):
    spec = SourceSpec.from_dict(
        dict(
            key="k",
            modality="video",
            format="folder",
            root="/x",
            transform={"protocol": protocol},
            clip={"frames": 16, "stride": 4},
        )
    )
    again = SourceSpec.from_dict(spec.to_dict())
    assert again == spec and again.transform.test_crops == (3 if protocol == "B" else 1)
