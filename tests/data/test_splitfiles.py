"""The benchmarks' own split files (UCF101, HMDB51, SSv2), written in their official layouts, read unmodified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.data.conftest import counter_frames
from unidual.data import DataError, SourceSpec, build_dataset
from unidual.data.check import check_dataset
from unidual.data.encode import write_video

CLIP = {"frames": 4, "num_clips": 1}
TRANSFORM = {"protocol": "custom", "flip": False}


def _spec(key: str, fmt: str, videos: Path, **keys) -> dict:
    return dict(key=key, modality="video", format=fmt, root=str(videos), clip=CLIP, transform=TRANSFORM, **keys)


# UCF101: three classes, one group per official split; HandstandPushups keeps the real quirk
# (folder "HandstandPushups", files "v_HandStandPushups_...")
UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
UCF_FILE_NAME = {"HandstandPushups": "HandStandPushups"}


def _ucf_video(name: str, group: int) -> str:
    return f"{name}/v_{UCF_FILE_NAME.get(name, name)}_g{group:02d}_c01.avi"


def make_ucf101(root: Path) -> dict:
    """``UCF-101/<Class>/v_<Class>_gXX_c01.avi`` and ``ucfTrainTestlist/`` with CRLF line ends, as distributed."""
    videos, splits = root / "UCF-101", root / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    for c, name in enumerate(UCF_CLASSES):
        for group in (1, 2, 3):
            write_video(videos / _ucf_video(name, group), counter_frames(6 + c, 32, 32), fps=10)
    crlf = "\r\n".join
    (splits / "classInd.txt").write_bytes((crlf(f"{i + 1} {n}" for i, n in enumerate(UCF_CLASSES)) + "\r\n").encode())
    for split in (1, 2, 3):  # split N tests group N and trains on the others
        train = [f"{_ucf_video(n, g)} {i + 1}" for i, n in enumerate(UCF_CLASSES) for g in (1, 2, 3) if g != split]
        test = [_ucf_video(n, split) for n in UCF_CLASSES]
        (splits / f"trainlist{split:02d}.txt").write_bytes((crlf(train) + "\r\n").encode())
        (splits / f"testlist{split:02d}.txt").write_bytes((crlf(test) + "\r\n").encode())
    return _spec("ucf", "ucf101", videos, splits=str(splits), split=1)


HMDB_CLASSES = ["brush_hair", "cartwheel"]


def make_hmdb51(root: Path) -> dict:
    """``hmdb51/<class>/<video>.avi`` and ``testTrainMulti_7030_splits/<class>_test_split<N>.txt``.

    Video i of a class is tagged 2 (test) in split i+1, 1 (train) in the next split, 0 otherwise;
    lines end in a space, as the distributed files do.
    """
    videos, splits = root / "hmdb51", root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for c, name in enumerate(HMDB_CLASSES):
        names = [f"{name}_clip_{i}.avi" for i in range(3)]
        for video in names:
            write_video(videos / name / video, counter_frames(6 + c, 32, 32), fps=10)
        for split in (1, 2, 3):
            tags = {(split - 1) % 3: 2, split % 3: 1}
            lines = "".join(f"{video} {tags.get(i, 0)} \n" for i, video in enumerate(names))
            (splits / f"{name}_test_split{split}.txt").write_text(lines)
    return _spec("hmdb", "hmdb51", videos, splits=str(splits), split=1)


SSV2_LABELS = {"Holding something": "0", "Putting something on something": "1", "Pushing something": "2"}
SSV2_TEMPLATES = ["Holding [something]", "Putting [something] on [something]", "Pushing [something]"]


def _ssv2_entry(video: int, label: int) -> dict:
    return {"id": str(video), "label": f"caption {video}", "template": SSV2_TEMPLATES[label], "placeholders": ["x"]}


def make_ssv2(root: Path) -> dict:
    """``20bn-something-something-v2/<id>.webm`` and ``labels/`` with labels.json, train/validation/test.json."""
    videos, labels = root / "20bn-something-something-v2", root / "labels"
    labels.mkdir(parents=True)
    for video in range(1, 7):
        write_video(videos / f"{video}.webm", counter_frames(6, 32, 32), fps=10)
    (labels / "labels.json").write_text(json.dumps(SSV2_LABELS, indent=1))
    (labels / "train.json").write_text(json.dumps([_ssv2_entry(v, v % 3) for v in (1, 2, 3, 4)]))
    (labels / "validation.json").write_text(json.dumps([_ssv2_entry(5, 2), _ssv2_entry(6, 0)]))
    (labels / "test.json").write_text(json.dumps([{"id": "7"}, {"id": "8"}]))
    # train.json is found beside labels.json
    return _spec("sth", "ssv2", videos, labels=str(labels / "labels.json"), train="train.json", test="validation.json")


def _names(ds) -> list[str]:
    return [Path(p).name for p in ds.files]


# --------------------------------------------------------------------------- UCF101


def test_ucf101_official_splits_crlf_one_indexed_and_unlabelled_test_lists(tmp_path):
    spec = make_ucf101(tmp_path)
    train, test = build_dataset(spec, "train"), build_dataset(spec, "test")
    assert train.classes == test.classes == UCF_CLASSES
    assert len(train) == 6 and train.labels == [0, 0, 1, 1, 2, 2]  # labels 1..3 in the list -> 0..2
    assert _names(train)[:2] == ["v_ApplyEyeMakeup_g02_c01.avi", "v_ApplyEyeMakeup_g03_c01.avi"]
    assert test.labels == [0, 1, 2] and _names(test)[2] == "v_HandStandPushups_g01_c01.avi"  # class = folder
    assert all(Path(p).is_file() for p in train.files + test.files)  # no "\r" left in a path
    assert train[0]["input"].shape == (3, 4, 32, 32) and test[2]["input"].shape == (1, 3, 4, 32, 32)
    split2 = build_dataset({**spec, "split": 2}, "test")
    assert _names(split2)[0] == "v_ApplyEyeMakeup_g02_c01.avi"
    # evaluation pins the run's label map; names are looked up in it
    assert build_dataset(spec, "test", classes=UCF_CLASSES[::-1]).labels == [2, 1, 0]


def test_ucf101_bad_and_missing_split_files_name_the_file_and_line(tmp_path):
    spec = make_ucf101(tmp_path)
    splits = Path(spec["splits"])
    with pytest.raises(DataError, match=r"trainlist04.txt: UCF101 split 4 split file not found"):
        build_dataset({**spec, "split": 4}, "train")
    train = splits / "trainlist01.txt"
    lines = train.read_bytes().split(b"\r\n")
    train.write_bytes(b"\r\n".join([lines[0], b"Archery/v_Archery_g02_c01.avi one", *lines[2:]]))
    with pytest.raises(DataError, match=r"trainlist01.txt:2: expected 'ClassName/video.avi label', got "):
        build_dataset(spec, "train")
    train.write_bytes(b"\r\n".join([lines[0], b"Archery/v_Archery_g02_c01.avi 4"]))
    with pytest.raises(DataError, match=r"trainlist01.txt:2: label 4 is outside classInd.txt's 1..3"):
        build_dataset(spec, "train")
    (splits / "testlist01.txt").write_bytes(b"Archery/v_Archery_g01_c01.avi\r\nBowling/v_Bowling_g01_c01.avi\r\n")
    with pytest.raises(DataError, match=r"testlist01.txt:2: class folder 'Bowling' is not in classInd.txt"):
        build_dataset(spec, "test")
    (splits / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n3 Archery\r\n")
    with pytest.raises(DataError, match=r"classInd.txt: class indices must run 1..2"):
        build_dataset(spec, "test")
    (splits / "classInd.txt").unlink()
    with pytest.raises(DataError, match=r"classInd.txt: UCF101 class index \(classInd.txt\) split file not found"):
        build_dataset(spec, "test")


def test_ucf101_missing_videos_fail_or_are_dropped(tmp_path):
    spec = make_ucf101(tmp_path)
    (Path(spec["root"]) / _ucf_video("Archery", 2)).unlink()
    with pytest.raises(DataError, match=r"1 of 6 listed files missing: .*trainlist01.txt:3: .*v_Archery_g02_c01.avi"):
        build_dataset(spec, "train")
    ds = build_dataset({**spec, "skip_missing": True}, "train")
    assert len(ds) == 5 and ds.missing[0].endswith("v_Archery_g02_c01.avi")


def test_benchmark_formats_refuse_keys_they_do_not_read():
    base = dict(key="u", modality="video", format="ucf101", root="/v", splits="/s", split=1)
    SourceSpec.from_dict(base)
    with pytest.raises(DataError, match="format ucf101 needs split"):
        SourceSpec.from_dict({**base, "split": None})
    with pytest.raises(DataError, match=r"format ucf101 does not read train \(it reads splits, split\)"):
        SourceSpec.from_dict({**base, "train": "trainlist01.txt"})
    with pytest.raises(DataError, match="format ucf101 is a video format"):
        SourceSpec.from_dict({**base, "modality": "image"})
    with pytest.raises(DataError, match="split must be an official split number"):
        SourceSpec.from_dict({**base, "split": 0})
    with pytest.raises(DataError, match="format hmdb51 needs splits, split"):
        SourceSpec.from_dict({**base, "format": "hmdb51", "splits": None, "split": None})
    with pytest.raises(DataError, match="format ssv2 needs labels"):
        SourceSpec.from_dict({**base, "format": "ssv2", "splits": None, "split": None})
    with pytest.raises(DataError, match=r"format list does not read labels \(it reads train, test\)"):
        SourceSpec.from_dict(dict(key="l", modality="video", format="list", root="/v", labels="/l.json"))


# --------------------------------------------------------------------------- HMDB51


def test_hmdb51_reads_the_per_class_split_files(tmp_path):
    spec = make_hmdb51(tmp_path)
    for split, train_video, test_video in ((1, 1, 0), (2, 2, 1), (3, 0, 2)):
        train = build_dataset({**spec, "split": split}, "train")
        test = build_dataset({**spec, "split": split}, "test")
        assert train.classes == test.classes == HMDB_CLASSES
        assert _names(train) == [f"{c}_clip_{train_video}.avi" for c in HMDB_CLASSES] and train.labels == [0, 1]
        assert _names(test) == [f"{c}_clip_{test_video}.avi" for c in HMDB_CLASSES] and test.labels == [0, 1]
    assert build_dataset(spec, "train")[1]["input"].shape == (3, 4, 32, 32)


def test_hmdb51_bad_and_missing_split_files(tmp_path):
    spec = make_hmdb51(tmp_path)
    splits = Path(spec["splits"])
    (splits / "cartwheel_test_split1.txt").write_text("cartwheel_clip_0.avi 2 \ncartwheel_clip_1.avi train\n")
    with pytest.raises(DataError, match=r"cartwheel_test_split1.txt:2: expected '<video>.avi 0\|1\|2', got "):
        build_dataset(spec, "train")
    (splits / "cartwheel_test_split1.txt").unlink()
    with pytest.raises(DataError, match=r"cartwheel_test_split1.txt: HMDB51 split 1 split file not found"):
        build_dataset(spec, "train")
    for path in splits.iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"no '<class>_test_split<N>.txt' files"):
        build_dataset(spec, "train")
    with pytest.raises(DataError, match="splits folder not found"):
        build_dataset({**spec, "splits": str(tmp_path / "nowhere")}, "train")


# --------------------------------------------------------------------------- SSv2


def test_ssv2_labels_from_templates_without_brackets(tmp_path):
    spec = make_ssv2(tmp_path)
    train, test = build_dataset(spec, "train"), build_dataset(spec, "test")
    assert train.classes == test.classes == list(SSV2_LABELS)  # in labels.json's id order
    assert _names(train) == ["1.webm", "2.webm", "3.webm", "4.webm"] and train.labels == [1, 2, 0, 1]
    assert _names(test) == ["5.webm", "6.webm"] and test.labels == [2, 0]
    assert train[0]["input"].shape == (3, 4, 32, 32)
    # videos re-encoded by `data prepare` (<id>.mp4) are found too
    write_video(Path(spec["root"]) / "9.mp4", counter_frames(6, 32, 32), fps=10)
    (tmp_path / "labels" / "more.json").write_text(json.dumps([_ssv2_entry(9, 1)]))
    assert _names(build_dataset({**spec, "test": "more.json"}, "test")) == ["9.mp4"]


def test_ssv2_unlabelled_test_json_and_bad_files_are_refused_in_one_line(tmp_path):
    spec = make_ssv2(tmp_path)
    with pytest.raises(DataError, match=r"test.json: entry 1 \(id '7'\) has no 'template': an unlabelled list"):
        build_dataset({**spec, "test": "test.json"}, "test")
    with pytest.raises(DataError, match=r"ssv2 file 'valid.json' not found \(looked for .*labels/valid.json or "):
        build_dataset({**spec, "test": "valid.json"}, "test")
    with pytest.raises(DataError, match=r"labels file not found: .*nowhere.json"):
        build_dataset({**spec, "labels": str(tmp_path / "nowhere.json")}, "test")
    labels = tmp_path / "labels"
    (labels / "odd.json").write_text(json.dumps([_ssv2_entry(1, 0), {**_ssv2_entry(2, 0), "template": "Eating [x]"}]))
    with pytest.raises(DataError, match=r"odd.json: entry 2 \(id '2'\): template 'Eating x' is not in .*labels.json"):
        build_dataset({**spec, "test": "odd.json"}, "test")
    (labels / "train.json").write_text('[\n{"id": "1",\n "template": }\n]')
    with pytest.raises(DataError, match=r"train.json:3: not valid JSON"):
        build_dataset(spec, "train")
    (labels / "labels.json").write_text(json.dumps({"Holding something": "0", "Pushing something": "0"}))
    with pytest.raises(DataError, match=r"labels.json: 'Pushing something': class id '0' is not a number used once"):
        build_dataset(spec, "test")


# --------------------------------------------------------------------------- all three through data check


@pytest.mark.parametrize("make", [make_ucf101, make_hmdb51, make_ssv2])
def test_data_check_reads_each_benchmark_from_a_sources_file(tmp_path, make):
    spec = make(tmp_path)
    relative = {
        k: (str(Path(v).relative_to(tmp_path)) if k in ("root", "splits", "labels") else v) for k, v in spec.items()
    }
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump([relative]))  # paths beside the file
    report = check_dataset(tmp_path / "sources.yaml")
    splits = report["sources"][0]["splits"]
    assert report["usable"] and set(splits) == {"train", "test"}, report
    assert all(s["unreadable"] == [] and s["readable"] == s["examples"] > 0 for s in splits.values())


# --------------------------------------------------------------------------- end to end (one format; all share the path)


@pytest.mark.slow
def test_ucf101_data_check_train_and_eval_from_the_cli(tmp_path, capsys):
    from helpers.tinydata import tiny_config

    from unidual.cli import main as cli

    spec = make_ucf101(tmp_path / "data")
    (tmp_path / "data" / "sources.yaml").write_text(yaml.safe_dump([spec]))
    assert cli(["data", "check", str(tmp_path / "data" / "sources.yaml"), "--json", "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: v["examples"] for k, v in report["sources"][0]["splits"].items()} == {"train": 6, "test": 3}
    config = tiny_config([], regime="separate", model="r2plus1d", schedule={"epochs": 1}, data={"epoch_size": 8})
    config["sources"] = str(tmp_path / "data" / "sources.yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert cli(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "labels.json").read_text())["ucf"]["classes"] == UCF_CLASSES
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "run"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["ucf"]["examples"] == 3, metrics
