"""Issue 24's config keys reach their pieces: each switch set in a config changes what the trainer builds.

The pieces' own effects are tested beside them (test_objectives / test_recipe_objectives, test_optim,
test_ema, tests/data/test_mixup, test_augment, test_jitter, test_mixing, test_labelspace,
tests/models/test_recipe_models); here a config goes in and the built optimiser, model, objective,
sampler, datasets, mixers and trainer come out.
"""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from helpers.tinydata import tiny_config

from unidual.data.labelspace import Relabelled
from unidual.train import distributed as D
from unidual.train.build import build_data, build_model, build_optim, mixers, model_for_config
from unidual.train.config import ConfigError, load_config
from unidual.train.inputs import to_device
from unidual.train.objectives import Objective
from unidual.train.optim import reported_lr
from unidual.train.recipe import RUN_SWITCHES, SOURCE_SWITCHES, recipe_block
from unidual.train.trainer import Trainer


def _cfg(sources, *, model=None, **sections):
    data = tiny_config(copy.deepcopy(sources), **sections)
    data["model"].update(model or {})
    return load_config(data=data)


@pytest.fixture(scope="module")
def routed_sources(tiny_sources, tmp_path_factory):
    """The tiny image + video sources and a third: images whose class folders are the video classes, spelled otherwise."""
    from pathlib import Path

    root = tmp_path_factory.mktemp("routed")
    img = Path(tiny_sources[0]["root"])
    for split in ("train", "test"):
        for colour, name in (("red", "Left"), ("blue", "RIGHT")):
            shutil.copytree(img / split / colour, root / split / name)
    third = {**tiny_sources[0], "key": "photos", "root": str(root), "head": "vid"}
    return [*tiny_sources, third]


# --------------------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    "change, message",
    [
        ({"optim": {"label_smoothing": 1.0}}, "optim.label_smoothing: must be in [0, 1)"),
        ({"optim": {"name": "adam"}}, "optim.name must be one of ['sgd', 'adamw']"),
        ({"optim": {"betas": [0.8, 0.99]}}, "optim.betas: are AdamW's"),
        ({"optim": {"name": "adamw", "betas": [0.9, 1.0]}}, "optim.betas: must be two numbers in [0, 1)"),
        ({"optim": {"backbone_lr_mult": 0.1}}, "optim.backbone_lr_mult: scales a pretrained backbone's LR"),
        ({"optim": {"backbone_lr_mult": 0}}, "optim.backbone_lr_mult: must be > 0"),
        ({"model": {"dropout": 1.0}}, "model.dropout: must be in [0, 1)"),
        ({"model": {"zero_init_residual": True}, "finetune": {"checkpoint": "x.pt"}}, "model.zero_init_residual"),
        ({"run": {"ema_decay": 1.0}}, "run.ema_decay: must be in [0, 1)"),
    ],
)
def test_run_switches_are_checked_in_one_line(tiny_sources, change, message):
    data = tiny_config(copy.deepcopy(tiny_sources))
    for section, values in change.items():
        data.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError) as info:
        load_config(data=data)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "source, message",
    [
        ({"transform": {"mixup": -1}}, "sources.0.transform.mixup: must be >= 0"),
        ({"transform": {"cutmix": -0.5}}, "sources.0.transform.cutmix: must be >= 0"),
        ({"transform": {"mix_prob": 1.5}}, "sources.0.transform.mix_prob: must be in [0, 1]"),
        ({"transform": {"randaugment": {"n": 2}}}, "missing required key 'm'"),
        ({"transform": {"randaugment": {"n": 2, "m": 11}}}, "sources.0.transform.randaugment.m: must be in [0, 10]"),
        ({"transform": {"scale": [0.9, 0.1]}}, "sources.0.transform.scale: must be [lo, hi]"),
        ({"transform": {"color_jitter": -1}}, "sources.0.transform.color_jitter: must be >= 0"),
        ({"loss_weight": -1}, "sources.0.loss_weight: must be >= 0"),
        ({"balance": 2}, "sources.0.balance: must be in [0, 1]"),
        ({"head_unmatched": "keep"}, "sources.0.head_unmatched must be one of ['error', 'drop']"),
        ({"head_unmatched": "drop"}, "sources.0.head_unmatched: applies to a shared head"),
        ({"head": "img"}, "sources.0.head: source 'img' names its own head"),
        ({"head": "kinetics"}, "sources.0.head: no source named 'kinetics'"),
    ],
)
def test_source_switches_are_checked_in_one_line(tiny_sources, source, message):
    sources = copy.deepcopy(tiny_sources)
    for key, value in source.items():
        if key == "transform":
            sources[0]["transform"] = {**sources[0]["transform"], **value}
        else:
            sources[0][key] = value
    with pytest.raises(ConfigError) as info:
        load_config(data=tiny_config(sources))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_shared_heads_are_refused_where_they_make_no_sense(routed_sources, tiny_sources):
    chained = copy.deepcopy(routed_sources)
    chained[1]["head"] = "img"  # vid -> img while photos -> vid
    with pytest.raises(ConfigError, match=r"sources.2.head: source 'vid' trains head 'img' itself; .* do not chain"):
        load_config(data=tiny_config(chained))
    one = [{**copy.deepcopy(tiny_sources[1]), "head": "img"}]
    with pytest.raises(ConfigError, match="regime 'separate' trains one source; a shared head needs its owner"):
        load_config(data=tiny_config(one, regime="separate", model="r2plus1d"))


# --------------------------------------------------------------------------- each key reaches its piece


def test_optimizer_keys_reach_the_optimizer(tiny_sources):
    plain = _cfg(tiny_sources)
    model = model_for_config(plain, {"img": 2, "vid": 2})
    sgd = build_optim(plain, model, 4, 4).optimizer
    assert type(sgd) is torch.optim.SGD and len(sgd.param_groups) == 1  # the default: SGD over every parameter

    cfg = _cfg(tiny_sources, optim={"name": "adamw", "betas": [0.8, 0.95], "decay_norm_and_bias": False,
                                    "weight_decay": 0.05})  # fmt: skip
    opt = build_optim(cfg, model, 4, 4).optimizer
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["betas"] == (0.8, 0.95)
    decays = sorted({g["weight_decay"] for g in opt.param_groups})
    assert decays == [0.0, 0.05] and sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))

    ft = _cfg(tiny_sources, optim={"backbone_lr_mult": 0.1}, finetune={"checkpoint": "pretrained.pt"})
    parts = build_optim(ft, model, 4, 4)
    mults = {g["lr_mult"] for g in parts.optimizer.param_groups}
    assert mults == {0.1, 1.0}  # the heads at the LR, the backbone at a tenth
    heads = {id(p) for n, p in model.named_parameters() if n.startswith("heads.")}
    for g in parts.optimizer.param_groups:
        assert all((id(p) in heads) == (g["lr_mult"] == 1.0) for p in g["params"])
    assert reported_lr(parts.optimizer) == pytest.approx(parts.lr)  # logs show the heads' LR


def test_model_keys_reach_the_model(tiny_sources):
    off = model_for_config(_cfg(tiny_sources), {"img": 2, "vid": 2})
    on = model_for_config(_cfg(tiny_sources, model={"dropout": 0.3, "zero_init_residual": True}), {"img": 2, "vid": 2})
    assert isinstance(on.head_dropout, torch.nn.Dropout) and on.head_dropout.p == 0.3
    assert isinstance(off.head_dropout, torch.nn.Identity)

    def last_bn_scales(model):
        return [m.weight for b in model.backbone.blocks() for m in b.last_norm().modules() if hasattr(m, "running_var")]

    assert all(float(w.detach().abs().sum()) == 0 for w in last_bn_scales(on))
    assert all(float(w.detach().abs().sum()) > 0 for w in last_bn_scales(off))
    assert on.spec == off.spec  # recipe choices are not part of the spec


def test_objective_and_mixers_follow_the_config(routed_sources):
    sources = copy.deepcopy(routed_sources)
    sources[0]["loss_weight"] = 0.5
    sources[0]["transform"] = {**sources[0]["transform"], "mixup": 0.8}
    sources[2]["transform"] = {**sources[2]["transform"], "cutmix": 1.0, "mix_prob": 0.5}
    cfg = _cfg(sources, optim={"label_smoothing": 0.1})
    objective = Objective.from_config(cfg)
    assert objective.label_smoothing == 0.1
    assert objective.loss_weights == {"img": 0.5, "vid": 1.0, "photos": 1.0}
    assert objective.heads == {"photos": "vid"}
    mix, classes = mixers(cfg, {"img": ["a", "b", "c"], "vid": ["l", "r"], "photos": ["x"] * 5}, {"photos": "vid"})
    assert set(mix) == {"img", "photos"}  # the video source does not mix
    assert (mix["img"].mixup, mix["photos"].cutmix, mix["photos"].mix_prob) == (0.8, 1.0, 0.5)
    assert classes == {"img": 3, "vid": 2, "photos": 2}  # a routed source's targets have its head's classes


def test_transform_keys_reach_the_training_plan_only(tiny_sources):
    sources = copy.deepcopy(tiny_sources)
    sources[1]["transform"] = {**sources[1]["transform"], "randaugment": {"n": 2, "m": 9}, "scale": [0.3, 1],
                               "color_jitter": 0.4}  # fmt: skip
    spec = _cfg(sources).sources[1].transform
    train, test = spec.plan("video", "train"), spec.plan("video", "test")
    assert (train.randaugment, train.scale, train.color_jitter) == ((2, 9.0), (0.3, 1.0), 0.4)
    assert (test.randaugment, test.scale, test.color_jitter) == (None, None, 0.0)
    plain = _cfg(tiny_sources).sources[1].transform.plan("video", "train")
    assert (plain.randaugment, plain.scale, plain.color_jitter) == (None, None, 0.0)


def test_balance_and_shared_head_reach_the_data_and_the_model(routed_sources, capsys):
    sources = copy.deepcopy(routed_sources)
    sources[0]["balance"] = 1.0
    cfg = _cfg(sources)
    data = build_data(cfg, D.DistEnv())
    assert data.sampler.balance == {"img": 1.0}
    assert data.heads == {"photos": "vid"}
    for split in (data.train_sets, data.test_sets):
        assert isinstance(split["photos"], Relabelled) and split["photos"].classes == ["left", "right"]
    assert data.classes["photos"] == ["Left", "RIGHT"]  # its own names stay in labels.json / the checkpoint
    assert sorted(set(data.train_sets["photos"].labels)) == [0, 1]
    parts = build_model(cfg, data, torch.device("cpu"), D.DistEnv(), resume=False)
    assert "photos" not in parts.model.spec["heads"] and set(parts.model.spec["heads"]) == {"img", "vid"}
    # a routed source's examples feed the other pathway's head, which gets gradients from both sources
    batch = {k: data.train_sets[k][0] for k in ("vid", "photos")}
    raw = {k: {"input": v["input"][None], "label": torch.tensor([v["label"]])} for k, v in batch.items()}
    sub = to_device(raw, torch.device("cpu"), data.norms)  # uint8 from the loader, normalised as in training
    for key in sub:
        parts.model.zero_grad()
        loss, _ = parts.train_module({key: sub[key]})
        loss.backward()
        assert parts.model.heads["vid"].weight.grad.abs().sum() > 0, key


def test_dropped_classes_are_counted_in_one_notice(routed_sources, tmp_path):
    sources = copy.deepcopy(routed_sources)
    root = tmp_path / "photos"
    shutil.copytree(sources[2]["root"], root)
    for split in ("train", "test"):
        shutil.copytree(root / split / "Left", root / split / "up")  # a class the video head lacks
    sources[2]["root"] = str(root)
    with pytest.raises(Exception, match=r"source 'photos': 1 of its 3 classes match no class of head 'vid'.*'up'"):
        build_data(_cfg(sources), D.DistEnv())
    sources[2]["head_unmatched"] = "drop"
    data = build_data(_cfg(sources), D.DistEnv())
    assert len(data.train_sets["photos"]) == 12 and data.train_sets["photos"].dropped_examples == 6


# --------------------------------------------------------------------------- the trainer


def test_mixing_is_drawn_once_even_when_a_compile_error_retries_the_step(tiny_sources, tmp_path):
    from unidual.train.compiled import COMPILE_ERRORS

    sources = copy.deepcopy(tiny_sources)
    for s in sources:
        s["transform"] = {**s["transform"], "mixup": 1.0}
    trainer = Trainer(_cfg(sources, run={"max_steps": 1}), run_dir=tmp_path / "run")
    seen = []

    class Compiled:  # a compiled step whose first call fails to compile
        active = True

        def disable(self, exc):
            self.active = False

    trainer.compiled = Compiled()
    original = trainer.train_module.forward

    def forward(sub, generator=None):
        seen.append(sub)
        if len(seen) == 1:
            raise COMPILE_ERRORS[0]("backward graph failed to compile")
        return original(sub, generator)

    trainer.train_module.forward = forward
    draws = []
    trainer._device_batch = (lambda f: lambda sub: draws.append(1) or f(sub))(trainer._device_batch)
    trainer.fit()
    assert len(seen) == 2 and len(draws) == 1 and seen[1] is seen[0]  # the retry reused the mixed batch
    assert all("target" in part for part in seen[0].values())  # mixed (mix_prob 1)


def test_ema_follows_real_updates_only(tiny_sources, tmp_path):
    cfg = _cfg(tiny_sources, run={"ema_decay": 0.5, "amp": "fp16", "log_every": 1, "eval_every": 0})
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    assert trainer.ema is not None and trainer.ema.decay == 0.5
    original, calls = trainer.train_module.forward, {"n": 0}

    def forward(sub, generator=None):
        loss, stats = original(sub, generator)
        calls["n"] += 1
        return (loss * float("inf") if calls["n"] == 3 else loss), stats  # one fp16 update overflows

    trainer.train_module.forward = forward
    result = trainer.fit()
    assert result.global_step == 8 and trainer.ema.updates == 8  # 9 updates tried, 1 skipped


def test_check_prints_every_recipe_switch(routed_sources, tmp_path, capsys):
    import yaml

    from unidual.cli import main as cli

    sources = copy.deepcopy(routed_sources)
    sources[0]["transform"] = {**sources[0]["transform"], "randaugment": {"n": 2, "m": 9}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(sources, run={"ema_decay": 0.99})))
    assert cli(["train", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("# recipe") :]
    for key in RUN_SWITCHES:
        assert f" {key}: " in block
    assert "*   run.ema_decay: 0.99" not in block and "#  * run.ema_decay: 0.99" in block
    assert "#    optim.label_smoothing: 0.0" in block  # unchanged switches carry no mark
    lines = [line for line in block.splitlines() if line.startswith("#    sources.")]
    assert len(lines) == 3
    for key in SOURCE_SWITCHES:
        assert all(key.removeprefix("transform.") + " " in line for line in lines)
    assert "*randaugment {n: 2, m: 9.0}" in lines[0] and "*head vid" in lines[2]
    assert yaml.safe_load(out)["run"]["ema_decay"] == 0.99  # still one YAML document (the block is comments)
    assert recipe_block(load_config(config)) in out
