"""`unidual demo` end to end on a shrunken dataset and schedule (the pipeline, not the accuracy)."""

from __future__ import annotations

import json
import re

import pytest

from unidual import checkpoint as ckpt
from unidual.cli import main as cli
from unidual.data.builtin import make_default_dataset
from unidual.train import demo as demo_module
from unidual.train.demo import format_results


def test_results_table_layout():
    text = format_results([["UniDual-Aux", "50.0", "40.0", "45.0"]], ["16.7", "6.2", "6.2"])
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["model", "image"] and lines[-1].split() == ["chance", "16.7", "6.2", "6.2"]


def test_demo_trains_in_the_few_videos_regime(tmp_path, monkeypatch):
    """The demo's data: a tenth of the default dataset's training videos, all of its images, and the
    videos labelled by the images' classes (the regime of the studies' largest joint gain)."""
    asked = {}

    class Stop(Exception):
        pass

    def record(out, **sizes):
        asked.update(sizes)
        raise Stop

    monkeypatch.setattr(demo_module, "make_default_dataset", record)
    with pytest.raises(Stop):
        cli(["demo", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "demo")])
    defaults = make_default_dataset.__kwdefaults__
    assert asked["videos_per_class"][0] * 10 == defaults["videos_per_class"][0]
    assert asked["images_per_class"][0] == defaults["images_per_class"][0]
    assert asked["videos_per_class"][1] > defaults["videos_per_class"][1]  # a larger test set than the default's
    assert asked["video_labels"] == "class" != defaults["video_labels"]


@pytest.mark.slow
def test_demo_runs_both_models_and_prints_table(tmp_path, capsys):
    code = cli(
        [
            "demo",
            "schedule.epochs=1",
            "data.epoch_size=32",
            "model.width=0.125",
            "optim.batch_size=8",
            "run.progress=false",
            "--small",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "demo"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "UniDual-Aux" in out and "R(2+1)D" in out and "chance" in out
    assert f"run directory: {tmp_path / 'demo'}" in out
    assert re.search(r"min on .+, \d+ threads, fp32 matmul \d+ GFLOP/s", out)  # the time, read against the machine
    record = json.loads((tmp_path / "demo" / "demo.json").read_text())
    printed = {line.split("  ")[0]: line.split()[-3:] for line in out.splitlines()[2:4]}
    assert {row[0]: row[1:] for row in record["rows"]} == printed  # the numbers kept are the ones printed
    assert record["machine"] in out and record["seconds"] > 0
    chance = out.splitlines()[-2].split()
    assert chance == ["chance", "16.7", "16.7", "16.7"]  # 6 shape classes, the videos labelled by shape
    joint, _ = ckpt.load_model(tmp_path / "demo" / "unidual_aux")
    video, _ = ckpt.load_model(tmp_path / "demo" / "r2plus1d")
    # the images train the video head (demo.yaml's `head: motion`, kept over the generated sources): no image
    # head, and the images are still scored (by the video head), so the joint row has an image number
    assert joint.spec["name"] == "unidual_aux" and set(joint.spec["heads"]) == {"motion"}
    assert printed["UniDual-Aux (joint)"][0] != "-"
    assert video.spec["name"] == "r2plus1d" and set(video.spec["heads"]) == {"motion"}
    assert (tmp_path / "data" / "shapes").is_dir()  # generated once, reused by later demos
