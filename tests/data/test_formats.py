"""The format table, the one text-file reader (non-UTF-8 bytes) and data check's full list of missing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.tinydata import tiny_config
from PIL import Image

from unidual.cli import main as cli
from unidual.data import DataError, SourceSpec, build_dataset
from unidual.data.formats import FORMATS, Format
from unidual.data.listing import Index, index_rows, join_root
from unidual.data.textfile import read_lines


def _images(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / name)


def test_a_new_format_is_one_reader_and_one_table_entry(tmp_path, monkeypatch):
    """A ``name=label`` list read through a table entry only: specs, datasets and check all pick it up."""

    def read_pairs(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
        rows = []
        for number, text in read_lines(Path(spec.root) / f"{split}.pairs"):
            path, label = text.split("=")
            rows.append((join_root(spec, split, path), label, f"{split}.pairs:{number}"))
        return index_rows(spec, split, rows, classes)

    monkeypatch.setitem(FORMATS, "pairs", Format(read_pairs, reads=(), modality="image", named_splits=False))
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "train.pairs").write_text("a.png=cat\nb.png=dog\n")
    (tmp_path / "test.pairs").write_text("c.png=dog\n")
    spec = dict(key="p", modality="image", format="pairs", root=str(tmp_path), transform={"protocol": "custom"})
    train, test = build_dataset(spec, "train"), build_dataset(spec, "test")
    assert train.classes == test.classes == ["cat", "dog"] and train.labels == [0, 1] and test.labels == [1]
    with pytest.raises(DataError, match=r"format pairs does not read train \(it reads none of them\)"):
        SourceSpec.from_dict({**spec, "train": "x"})
    with pytest.raises(DataError, match="format pairs is a image format"):
        SourceSpec.from_dict({**spec, "modality": "video"})


def _list_source(tmp_path: Path, listing: bytes) -> Path:
    _images(tmp_path / "imgs", ["a.png", "b.png"])
    (tmp_path / "imgs" / "train.txt").write_bytes(listing)
    spec = dict(key="l", modality="image", format="list", root=str(tmp_path / "imgs"), train="train.txt")
    spec["transform"] = {"protocol": "custom", "resize": 8, "crop": 8}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump([spec]))
    return tmp_path / "sources.yaml"


def test_a_non_utf8_byte_in_a_list_is_one_line_naming_file_and_line(tmp_path, capsys):
    sources = _list_source(tmp_path, b"a.png cat\nb\xe9.png dog\n")
    want = r"train.txt:2: not UTF-8 text \(byte 0xe9 at column 2\); save the file as UTF-8"
    with pytest.raises(DataError, match=want):
        build_dataset(yaml.safe_load(sources.read_text())[0], "train")
    # data check: the split is refused with that line, exit 1, no traceback
    assert cli(["data", "check", str(sources)]) == 1
    out = capsys.readouterr()
    assert "train.txt:2: not UTF-8 text" in out.out and "Traceback" not in out.out + out.err
    # data check on the list file itself (its modality guessed from the first line)
    assert cli(["data", "check", str(tmp_path / "imgs" / "train.txt")]) == 1
    out = capsys.readouterr()
    assert "train.txt:2: not UTF-8 text" in out.out + out.err and "Traceback" not in out.out + out.err
    # train: exit 2 with one line, before anything is built
    config = tiny_config([], regime="separate", model="r2d")
    config["sources"] = str(sources)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert cli(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "train.txt:2: not UTF-8 text" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_utf8_with_a_byte_order_mark_and_crlf_reads_clean(tmp_path):
    sources = _list_source(tmp_path, "\ufeffa.png cät\r\nb.png dog\r\n".encode())
    ds = build_dataset(yaml.safe_load(sources.read_text())[0], "train")
    assert ds.classes == ["cät", "dog"] and [Path(f).name for f in ds.files] == ["a.png", "b.png"]


def test_a_non_utf8_classes_file_and_split_file_are_named_too(tmp_path):
    from tests.data.test_splitfiles import make_ucf101

    spec = make_ucf101(tmp_path)
    (Path(spec["splits"]) / "testlist01.txt").write_bytes(b"Archery/v_Archery_g01_c01.avi\r\n\x81\r\n")
    with pytest.raises(DataError, match=r"testlist01.txt:2: not UTF-8 text \(byte 0x81 at column 1\)"):
        build_dataset(spec, "test")
    (tmp_path / "classes.txt").write_bytes(b"cat\n\xffdog\n")
    spec = dict(key="i", modality="image", format="folder", root=str(tmp_path), classes=str(tmp_path / "classes.txt"))
    with pytest.raises(DataError, match=r"classes.txt:2: not UTF-8 text"):
        build_dataset(spec, "train")


def test_data_check_json_lists_every_missing_file_of_a_refused_source(tmp_path, capsys):
    sources = _list_source(tmp_path, b"".join(b"gone_%d.png cat\n" % i for i in range(25)) + b"a.png cat\n")
    assert cli(["data", "check", str(sources), "--json"]) == 1
    split = json.loads(capsys.readouterr().out)["sources"][0]["splits"]["train"]
    assert "25 of 26 listed files missing" in split["error"] and "(and 22 more)" in split["error"]
    assert len(split["missing"]) == 25 and split["missing"][24].endswith(
        "train.txt:25: " + str(tmp_path / "imgs" / "gone_24.png")
    )
    assert cli(["data", "check", str(sources)]) == 1
    assert "missing: 25 listed files (--json lists every one)" in capsys.readouterr().out
    # every row missing, with skip_missing: refused too, and every one listed
    spec = yaml.safe_load(sources.read_text())[0]
    (tmp_path / "imgs" / "train.txt").write_text("gone_1.png cat\ngone_2.png dog\n")
    sources.write_text(yaml.safe_dump([{**spec, "skip_missing": True}]))
    assert cli(["data", "check", str(sources), "--json"]) == 1
    split = json.loads(capsys.readouterr().out)["sources"][0]["splits"]["train"]
    assert "none of the 2 listed files exists" in split["error"] and len(split["missing"]) == 2


def test_a_format_refusing_a_key_names_the_source_once(tmp_path):
    from unidual.data.errors import DataError
    from unidual.data.specs import SourceSpec
    from unidual.yamlconfig import ConfigError

    spec = {"key": "u", "modality": "video", "format": "ucf101", "root": str(tmp_path), "splits": str(tmp_path),
            "split": 1, "train": "x.txt"}  # fmt: skip
    with pytest.raises((ConfigError, DataError)) as info:
        SourceSpec.from_dict(spec)
    assert str(info.value).count("source 'u'") == 1 and "config:" not in str(info.value)
