"""Issue 24's end-to-end acceptance: a tiny joint run with every recipe switch on trains, resumes
bit-exactly after SIGKILL on the CPU, evaluates and exports with ``--weights ema``; a finetune run
from it takes ``optim.backbone_lr_mult`` (``model.zero_init_residual`` refuses a checkpoint start)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers.killable import killable_train
from helpers.tinydata import tiny_config

from tests.train.test_resume_cli import write_config
from unidual import checkpoint as ckpt
from unidual.cli import main as cli
from unidual.run import read_metrics


def every_switch_on(tiny_sources: list[dict], root: Path) -> dict:
    """img + vid + a third image source of the video classes routed into the video head; every switch on."""
    img = Path(tiny_sources[0]["root"])
    for split in ("train", "test"):
        for colour, name in (("red", "Left"), ("blue", "RIGHT")):
            shutil.copytree(img / split / colour, root / "photos" / split / name)
    augment = {"randaugment": {"n": 2, "m": 9}, "scale": [0.3, 1.0], "color_jitter": 0.4}
    image, video = tiny_sources
    sources = [
        {**image, "transform": {**image["transform"], "mixup": 0.8, "cutmix": 1.0, **augment},
         "loss_weight": 0.5, "balance": 1.0},
        {**video, "transform": {**video["transform"], "mixup": 0.8, "mix_prob": 0.5, **augment}},
        {**image, "key": "photos", "root": str(root / "photos"), "head": "vid",
         "transform": {**image["transform"], "cutmix": 1.0, "color_jitter": 0.2}},
    ]  # fmt: skip
    data = tiny_config(
        sources,
        optim={"name": "adamw", "lr": 0.002, "betas": [0.85, 0.99], "weight_decay": 0.05,
               "decay_norm_and_bias": False, "label_smoothing": 0.1},
        schedule={"epochs": 2, "warmup_epochs": 1, "kind": "cosine"},
        data={"precise_bn_batches": 2},
        run={"ema_decay": 0.8, "save_every": 2, "log_every": 1},
    )  # fmt: skip
    data["model"].update(dropout=0.2, zero_init_residual=True)
    return data


@pytest.mark.slow
def test_every_switch_on_trains_resumes_bit_exactly_evaluates_and_exports_ema(tiny_sources, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", every_switch_on(tiny_sources, tmp_path))
    run = killable_train(tmp_path, timeout=600)

    full = run(str(config), "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    killed = run(str(config), "--out", str(tmp_path / "killed"), kill_at=7)  # epoch 2, after update 7
    assert killed.returncode == -9
    assert ckpt.load_checkpoint(tmp_path / "killed" / "last.pt")["train_state"]["global_step"] == 6
    resumed = run("--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr

    a, b = ckpt.load_checkpoint(tmp_path / "full" / "last.pt"), ckpt.load_checkpoint(tmp_path / "killed" / "last.pt")
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 8
    for name in ("model", "ema"):
        state_a, state_b = (a[name], b[name]) if name == "model" else (a[name]["model"], b[name]["model"])
        assert all(torch.equal(v, state_b[k]) for k, v in state_a.items()), name
    assert a["ema"]["updates"] == 8 and a["weights"] == b["weights"] and a["metrics"] == b["metrics"]
    assert a["sources"]["photos"] == {"modality": "image", "classes": ["Left", "RIGHT"], "head": "vid"}
    assert "photos" not in a["model_spec"]["heads"]
    records = {run: read_metrics(tmp_path / run / "metrics.jsonl")[0] for run in ("full", "killed")}
    strip = [{k: v for k, v in r.items() if k != "examples_per_s"} for r in records["full"]]
    assert strip == [{k: v for k, v in r.items() if k != "examples_per_s"} for r in records["killed"]]
    val = [r for r in records["full"] if r["type"] == "val"]
    assert len(val) == 2 and all("ema/score" in r and "ema/photos/top1" in r for r in val)
    assert val[-1]["weights"] == a["weights"]
    assert all("loss/photos" in r for r in records["full"] if r["type"] == "train")  # the routed source trains

    # eval: the EMA weights of last.pt give exactly the EMA metrics the last validation logged
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "killed" / "last.pt"), "--weights", "ema", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    for key in ("img", "vid", "photos"):
        for metric, value in table[key].items():
            assert value == pytest.approx(val[-1][f"ema/{key}/{metric}"]), (key, metric)
    assert cli(["eval", str(tmp_path / "killed" / "last.pt"), "--weights", "raw", "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["vid"]["nll"] == pytest.approx(val[-1]["vid/nll"]) and raw["vid"]["nll"] != table["vid"]["nll"]

    # export: the exported video pathway computes with the EMA weights
    out = tmp_path / "export" / "video.pt2"
    assert cli(["export", str(tmp_path / "killed" / "last.pt"), "--pathway", "video", "--format", "pt2", "--out", str(out),
                "--weights", "ema"]) == 0  # fmt: skip
    program = torch.export.load(str(out)).module()
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    x = torch.randn(2, 3, sidecar["frames"], *sidecar["size"])
    ema_model, _ = ckpt.load_model(tmp_path / "killed" / "last.pt", weights="ema")
    raw_model, _ = ckpt.load_model(tmp_path / "killed" / "last.pt", weights="raw")
    exported = program(x)
    exported = exported[0] if isinstance(exported, (tuple, list)) else exported
    assert torch.allclose(exported, ema_model(x, pathway="video")["vid"], atol=1e-4)
    assert not torch.allclose(exported, raw_model(x, pathway="video")["vid"], atol=1e-4)

    # a finetune start from it: backbone_lr_mult takes; a run without EMA refuses --weights ema
    ft = run(str(config), "--out", str(tmp_path / "ft"), "model.zero_init_residual=false", "run.ema_decay=0",
             f"finetune.checkpoint={tmp_path / 'killed' / 'last.pt'}", "optim.backbone_lr_mult=0.1",
             "run.max_steps=2")  # fmt: skip
    assert ft.returncode == 0, ft.stderr
    groups = ckpt.load_checkpoint(tmp_path / "ft" / "last.pt")["train_state"]["optimizer"]["param_groups"]
    assert {g["lr_mult"] for g in groups} == {0.1, 1.0}
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "ft"), "--weights", "ema"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no EMA weights" in err and len(err.splitlines()) == 1
