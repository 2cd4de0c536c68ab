"""The trainer: every regime runs, the run directory is complete, checkpoints reload, failures are clear."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from helpers.tinydata import tiny_config

from unidual import checkpoint as ckpt
from unidual.run import Run
from unidual.train.config import load_config
from unidual.train.trainer import Interrupted, Trainer, TrainingError, train


def test_unidual_aux_run_directory_is_complete(tiny_sources, tmp_path):
    cfg = load_config(data=tiny_config(tiny_sources, run={"plots": True, "log_every": 2}))
    result = train(cfg, run_dir=tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "labels.json", "metrics.jsonl", "last.pt", "best.pt", "loss.png", "accuracy.png"):
        assert (run / name).is_file(), name
    assert load_config(run / "config.yaml") == cfg  # the resolved config reproduces the run
    labels = json.loads((run / "labels.json").read_text())
    assert labels == {
        "img": {"modality": "image", "classes": ["blue", "red"]},
        "vid": {"modality": "video", "classes": ["left", "right"]},
    }
    assert Run(run).read_labels() == {"img": ["blue", "red"], "vid": ["left", "right"]}  # the run's own file
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if r["type"] == "train"]
    assert [r["step"] for r in train_recs] == [2, 4, 6, 8]
    assert {"loss/img", "loss/vid", "loss/img_aux", "loss/vid_aux", "examples_per_s", "lr"} <= set(train_recs[0])
    assert [r["epoch"] for r in records if r["type"] == "val"] == [1, 2]
    assert result.global_step == 8 and set(result.metrics) == {"img", "vid"}
    assert {"top1", "top5"} <= set(result.metrics["img"]) and {"clip@1", "video@1"} <= set(result.metrics["vid"])

    # weights_only reload through the shared checkpoint API; aux heads dropped for inference
    payload = torch.load(run / "last.pt", weights_only=True)
    assert payload["train_state"]["global_step"] == 8 and payload["sources"]["vid"]["classes"] == ["left", "right"]
    model, _ = ckpt.load_model(run)
    assert not any(k.endswith("_aux") for k in model.heads)
    model_full, _ = ckpt.load_model(run / "last.pt", deploy=False)
    live = {k: v for k, v in payload["model"].items()}
    assert all(torch.equal(live[k], v) for k, v in model_full.state_dict().items())


@pytest.mark.parametrize(
    "regime, model, keys",
    [
        ("separate", "r2d", ["img"]),
        ("separate", "r2plus1d", ["vid"]),
        ("multitask", "r2plus1d_multitask", ["img", "vid"]),
        ("multitask", "r2d_multitask", ["img", "vid"]),
        ("unidual", "unidual", ["img", "vid"]),
    ],
)
def test_regimes_train_and_change_weights(tiny_sources, tmp_path, regime, model, keys):
    sources = [s for s in tiny_sources if s["key"] in keys]
    cfg = load_config(data=tiny_config(sources, regime, model, schedule={"epochs": 1}, run={"eval_every": 0}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    after = trainer.model.state_dict()
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert any("backbone" in k for k in changed)
    assert set(result.metrics) == set(keys)
    assert trainer.model.spec["name"] == model


def test_finetune_inflates_pretrained_r2d_into_r2plus1d(tiny_sources, tmp_path):
    img, vid = tiny_sources
    pre = load_config(data=tiny_config([img], "separate", "r2d", schedule={"epochs": 1}, run={"eval_every": 0}))
    train(pre, run_dir=tmp_path / "pre")
    cfg = load_config(
        data=tiny_config(
            [vid],
            "finetune",
            "r2plus1d",
            finetune={"checkpoint": str(tmp_path / "pre"), "convert": "inflate"},
            schedule={"epochs": 1},
        )
    )
    trainer = Trainer(cfg, run_dir=tmp_path / "ft")
    src = ckpt.load_checkpoint(tmp_path / "pre")["model"]
    dst = trainer.model.state_dict()
    spatial = [k for k in src if k.endswith("spatial.weight")]
    assert spatial and all(torch.equal(src[k], dst[k]) for k in spatial)
    assert trainer.finetune_missing and all(k.startswith("heads.") for k in trainer.finetune_missing)
    assert trainer.fit().global_step == 4
    # default convert "auto" = the model table's conversion; inflate_mode "mean" spreads w/t over the taps (I3D)
    auto = Trainer(
        load_config(
            data=tiny_config(
                [vid], "finetune", "r2plus1d", finetune={"checkpoint": str(tmp_path / "pre"), "inflate_mode": "mean"}
            )
        ),
        run_dir=tmp_path / "ft-auto",
    )
    pw = [k for k in src if k.endswith("pointwise.weight")]
    got = auto.model.state_dict()
    assert pw and all(torch.allclose(got[k], src[k].expand_as(got[k]) / got[k].shape[2]) for k in pw)


def test_grad_accumulation_counts_updates(tiny_sources, tmp_path):
    cfg = load_config(
        data=tiny_config(
            tiny_sources, optim={"batch_size": 2, "accumulate": 2}, schedule={"epochs": 1}, run={"eval_every": 0}
        )
    )
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    assert (trainer.micro_per_epoch, trainer.updates_per_epoch, trainer.global_batch) == (8, 4, 4)
    assert trainer.fit().global_step == 4


def test_lr_scaling_rule_and_nesterov_applied(tiny_sources, tmp_path):
    cfg = load_config(data=tiny_config(tiny_sources, optim={"lr": 0.4, "reference_batch": 16}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    assert trainer.lr == pytest.approx(0.4 * 4 / 16) and not trainer.optimizer.param_groups[0]["nesterov"]
    cfg = load_config(data=tiny_config(tiny_sources, optim={"nesterov": True}))
    assert Trainer(cfg, run_dir=tmp_path / "run2").optimizer.param_groups[0]["nesterov"] is True


def _diverge_after(trainer: Trainer, step: int) -> None:
    module = trainer.train_module
    original = module.forward

    def forward(sub, generator=None):
        loss, stats = original(sub, generator)
        return (loss * float("nan") if trainer.global_step >= step else loss), stats

    module.forward = forward


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tiny_sources, tmp_path):
    cfg = load_config(data=tiny_config(tiny_sources, run={"eval_every": 0, "save_every": 2}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    _diverge_after(trainer, 5)
    with pytest.raises(TrainingError, match=r"loss is nan .*diverged.*last\.pt"):
        trainer.fit()
    state = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]
    assert state["global_step"] == 4
    assert all(
        torch.isfinite(v).all()
        for v in ckpt.load_checkpoint(tmp_path / "run")["model"].values()
        if v.is_floating_point()
    )


def test_sigint_saves_checkpoint_then_resume_finishes(tiny_sources, tmp_path):
    cfg = load_config(data=tiny_config(tiny_sources, run={"eval_every": 0}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    update = trainer._update

    def update_then_ctrl_c():
        update()
        if trainer.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    trainer._update = update_then_ctrl_c
    with pytest.raises(Interrupted, match="--resume"):
        trainer.fit()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    state = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]
    assert (state["global_step"], state["epoch"], state["step_in_epoch"]) == (3, 0, 3)
    resumed = Trainer(cfg, run_dir=tmp_path / "run", resume=True).fit()
    assert resumed.global_step == 8


def test_out_of_memory_says_what_to_lower(tiny_sources, tmp_path):
    cfg = load_config(data=tiny_config(tiny_sources, run={"eval_every": 0}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")

    def oom(*_a, **_k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    trainer.train_module.forward = oom
    with pytest.raises(TrainingError, match=r"out of memory.*optim\.batch_size.*optim\.accumulate"):
        trainer.fit()


def test_existing_run_is_not_overwritten(tiny_sources, tmp_path):
    cfg = load_config(data=tiny_config(tiny_sources, schedule={"epochs": 1}, run={"eval_every": 0}))
    train(cfg, run_dir=tmp_path / "run")
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, run_dir=tmp_path / "run")


def test_tensorboard_logs_the_same_scalars(tiny_sources, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'unidual[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(data=tiny_config(tiny_sources, run={"tensorboard": True, "log_every": 2}))
    train(cfg, run_dir=tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/img/top1", "val/vid/video@1"} <= tags, tags
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["loss"] for r in records if r["type"] == "train"]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(logged, rel=1e-6)
