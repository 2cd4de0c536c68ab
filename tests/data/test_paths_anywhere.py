"""Paths written by unidual work from any folder: generated sources files name their data relative to
the file (the folder moves as one), run configs store absolute roots (issue 28, item 10)."""

from __future__ import annotations

import yaml
from helpers.tinydata import make_tiny_sources, tiny_config

from unidual.cli import main
from unidual.train.config import load_config


def test_make_default_sources_file_works_from_any_folder_and_when_moved(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["data", "make-default", "d", "--images-per-class", "1", "1", "--videos-per-class", "1", "1"]
    assert main(argv) == 0
    roots = {d["key"]: d["root"] for d in yaml.safe_load((tmp_path / "d" / "sources.yaml").read_text())}
    assert roots == {"shapes": "shapes", "motion": "motion"}  # relative to the sources file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["data", "check", str(tmp_path / "d" / "sources.yaml")]) == 0
    (tmp_path / "d").rename(tmp_path / "moved")
    assert main(["data", "check", str(tmp_path / "moved")]) == 0
    capsys.readouterr()


def test_inline_relative_roots_become_absolute_in_the_run_config(tmp_path, monkeypatch):
    sources = make_tiny_sources(tmp_path / "data", per_class=2, test_per_class=1)
    for s in sources:
        s["root"] = str((tmp_path / "data" / s["key"]).relative_to(tmp_path))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(data=tiny_config(sources))
    assert [s.root for s in cfg.sources] == [str(tmp_path / "data" / "img"), str(tmp_path / "data" / "vid")]
    missing = tiny_config([{**sources[0], "root": "not/there"}, sources[1]])
    assert load_config(data=missing).sources[0].root == "not/there"  # left as written: its error names it so


def test_eval_of_a_run_trained_with_relative_roots_works_from_elsewhere(tmp_path, monkeypatch, capsys):
    sources = make_tiny_sources(tmp_path / "data", per_class=2, test_per_class=1)
    for s in sources:
        s["root"] = f"data/{s['key']}"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(sources, schedule={"epochs": 1})))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "c.yaml", "--out", "run"]) == 0
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["sources"][0]["root"] == str(tmp_path / "data" / "img")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run")]) == 0, capsys.readouterr().err
