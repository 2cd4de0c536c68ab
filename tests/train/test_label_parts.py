"""``run.label_parts``: training accuracy of each part of "<class> <motion>" labels, logged per term."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers.tinydata import tiny_config

from unidual.data.labelparts import part_indices
from unidual.models import create_model
from unidual.train.config import ConfigError, load_config
from unidual.train.meters import TrainMeter
from unidual.train.objectives import LossModule, Objective
from unidual.train.trainer import Trainer, train

VID = ["cat left", "cat right", "dog left", "dog right"]


def test_part_indices_number_each_part_and_refuse_one_word_names():
    assert part_indices(VID) == {"class": [0, 0, 1, 1], "motion": [0, 1, 0, 1]}
    assert part_indices(["pickup truck up", "cat up"]) == {"class": [1, 0], "motion": [0, 0]}
    assert part_indices(["left", "cat right"]) is None


def test_objective_and_meter_count_each_part_on_every_term_of_the_source():
    model = create_model(
        "unidual_aux",
        depth=10,
        width=0.125,
        heads={"img": 3, "vid": 4},
        frames=2,
        modalities={"img": "image", "vid": "video"},
    ).eval()
    with torch.no_grad():  # every 4-way head predicts class 1, "cat right"
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.out_features == 4:
                m.weight.zero_()
                m.bias.copy_(torch.tensor([0.0, 9.0, 0.0, 0.0]))
    batch = {
        "img": {"input": torch.randn(2, 3, 32, 32), "label": torch.tensor([0, 2])},
        "vid": {"input": torch.randn(4, 3, 2, 32, 32), "label": torch.tensor([0, 1, 2, 3])},
    }
    objective = Objective(
        {"img": "image", "vid": "video"}, aux=True, frame="middle", label_parts={"vid": part_indices(VID)}
    )
    loss, stats = LossModule(model, objective)(batch)
    # labels cat-left, cat-right, dog-left, dog-right vs "cat right": 1 exact, 2 right class, 2 right motion
    for term in ("vid", "vid_aux"):
        assert float(stats["correct"][term]) == 1
        assert float(stats["part_correct"][f"class/{term}"]) == 2
        assert float(stats["part_correct"][f"motion/{term}"]) == 2
    assert not any(k.endswith("/img") or k.endswith("/img_aux") for k in stats["part_correct"])
    meter = TrainMeter()
    meter.add(stats, loss)
    record = meter.record(epoch=1, step=1, lr=0.1, world_size=1)
    assert record["acc/vid"] == 25.0 and record["acc_class/vid"] == 50.0 and record["acc_motion/vid_aux"] == 50.0
    assert "acc_class/img" not in record
    _, off = LossModule(model, Objective({"img": "image", "vid": "video"}, aux=True, frame="middle"))(batch)
    assert "part_correct" not in off  # off by default: the statistics are unchanged


def test_training_logs_the_parts(tiny_sources, tmp_path):
    # the tiny videos relabelled "sq left" / "sq right": one class part, so it is always right and the
    # motion part is the whole label
    vid = next(s for s in tiny_sources if s["key"] == "vid")
    root = tmp_path / "vid"
    for split in ("train", "test"):
        for name in ("left", "right"):
            shutil.copytree(f"{vid['root']}/{split}/{name}", root / split / f"sq {name}")
    sources = [s for s in tiny_sources if s["key"] == "img"] + [{**vid, "root": str(root)}]
    cfg = load_config(data=tiny_config(sources, run={"eval_every": 0, "log_every": 1, "label_parts": True}))
    train(cfg, run_dir=tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    records = [r for r in records if r["type"] == "train"]
    assert records
    for r in records:
        for term in ("vid", "vid_aux"):
            assert r[f"acc_class/{term}"] == 100.0
            assert r[f"acc_motion/{term}"] == pytest.approx(r[f"acc/{term}"])
        assert "acc_class/img" not in r


def test_no_two_part_labels_is_a_config_error(tiny_sources, tmp_path):
    cfg = load_config(data=tiny_config(tiny_sources, run={"label_parts": True}))
    with pytest.raises(ConfigError, match="run.label_parts: no source has '<class> <motion>'"):
        Trainer(cfg, run_dir=tmp_path / "run")
