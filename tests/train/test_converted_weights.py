"""`unidual convert` -> a checkpoint that predict / eval use directly and train starts from.

The published weights are stood in for by benchmarks/reference.py's R2Plus1d18 (torchvision's
``r2plus1d_18`` topology, random weights, non-trivial BN statistics); nothing is downloaded.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from helpers.nets import load_reference, randomise_bn
from helpers.tinydata import tiny_config

from unidual import checkpoint as ckpt
from unidual.cli import main as cli
from unidual.models.surgery import deflate
from unidual.train.config import load_config
from unidual.train.trainer import Trainer, TrainingError, train

reference = load_reference()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """A torchvision-layout R(2+1)D-18 with 2 classes, saved as a DDP-style wrapped .pth."""
    torch.manual_seed(0)
    net = reference.R2Plus1d18(num_classes=2)
    randomise_bn(net, affine=False)
    path = tmp_path_factory.mktemp("weights") / "r2plus1d_18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return net.eval(), path


@pytest.fixture(scope="module")
def converted(published, tmp_path_factory) -> Path:
    _, weights = published
    folder = tmp_path_factory.mktemp("converted")
    (folder / "classes.txt").write_text("left\nright\n")
    out = folder / "r2plus1d_18.pt"
    assert (
        cli(
            [
                "convert",
                str(weights),
                "--out",
                str(out),
                "--head",
                "vid",
                "--frames",
                "4",
                "--clips",
                "2",
                "--classes",
                str(folder / "classes.txt"),
            ]
        )
        == 0
    )
    return out


def test_converted_checkpoint_equals_the_source(published, converted, capsys):
    net, _ = published
    model, payload = ckpt.load_model(converted)
    assert payload["sources"] == {"vid": {"modality": "video", "classes": ["left", "right"]}}
    assert model.spec["options"]["layout"] == "torchvision" and model.spec["options"]["bn_eps"] == 1e-5
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["vid"], net(clip), rtol=1e-5, atol=1e-5)


def test_convert_refuses_bad_weights(tmp_path, capsys):
    (tmp_path / "text.pth").write_bytes(b"not a pickle")
    with (tmp_path / "code.pth").open("wb") as f:
        pickle.dump(torch.nn.Linear(2, 2), f)  # an object, not tensors: weights_only refuses it
    torch.save({"a": torch.zeros(2)}, tmp_path / "foreign.pth")
    for name, why in [
        ("missing.pth", "no such weights file"),
        ("text.pth", "cannot be loaded"),
        ("code.pth", "cannot be loaded"),
        ("foreign.pth", "no 'fc.weight'"),
    ]:
        code = cli(["convert", str(tmp_path / name), "--out", str(tmp_path / "x.pt")])
        err = capsys.readouterr().err
        assert code == 2 and why in err and name in err and "Traceback" not in err, err
    assert not (tmp_path / "x.pt").exists()


def test_convert_checks_the_class_names(published, tmp_path, capsys):
    _, weights = published
    (tmp_path / "three.json").write_text(json.dumps(["a", "b", "c"]))
    code = cli(["convert", str(weights), "--out", str(tmp_path / "x.pt"), "--classes", str(tmp_path / "three.json")])
    err = capsys.readouterr().err
    assert code == 2 and "3 class names, but the weights have 2 classes" in err


def test_predict_and_eval_use_the_converted_checkpoint(converted, tiny_sources, capsys):
    _, vid = tiny_sources
    video = next((Path(vid["root"]) / "test" / "left").glob("*.mp4"))
    assert cli(["predict", str(converted), str(video), "--json", "--topk", "2"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["modality"] == "video" and {c["class"] for c in result["top"]["vid"]} == {"left", "right"}
    # eval needs to be told where the test videos are, and says so
    assert cli(["eval", str(converted)]) == 2
    assert "--data vid=PATH" in capsys.readouterr().err
    assert cli(["eval", str(converted), "--data", f"vid={vid['root']}", "--clips", "1", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["vid"]["examples"] == 4


def full_width_config(sources: list[dict], regime: str, name: str, **sections) -> dict:
    """tiny_config with the converted network's backbone: R(2+1)D-18, full width, torchvision layout."""
    cfg = tiny_config(sources, regime, name, **sections)
    cfg["model"].update(depth=18, width=1.0, options={"layout": "torchvision"})
    return cfg


@pytest.mark.parametrize(
    "model, convert", [("r2plus1d", None), ("r2d", "deflate"), ("unidual_aux", "deflate"), ("unidual", "auto")]
)
def test_train_starts_from_converted_weights(converted, tiny_sources, tmp_path, model, convert):
    img, vid = tiny_sources
    sources, regime = ([img, vid], model) if model.startswith("unidual") else ([vid], "separate")
    cfg = load_config(
        data=full_width_config(
            sources,
            regime,
            model,
            finetune={"checkpoint": str(converted), "convert": convert},
            run={"max_steps": 1, "eval_every": 0},
        )
    )
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    src = ckpt.load_checkpoint(converted)["model"]
    dst = trainer.model.state_dict()
    key = "backbone.layer3.0.conv2.pointwise.weight"
    if model == "r2plus1d":
        assert torch.equal(dst[key], src[key])
    elif model == "r2d":
        assert torch.equal(dst[key], deflate(src[key]))
    else:  # video pathway = the source, image pathway = its deflated filters
        assert torch.equal(dst["backbone.layer3.0.conv2.pointwise.video.weight"], src[key])
        assert torch.equal(dst["backbone.layer3.0.conv2.pointwise.image.weight"], deflate(src[key]))
    assert torch.equal(dst["backbone.stem.conv.spatial.weight"], src["backbone.stem.conv.spatial.weight"])
    assert all(k.startswith("heads.") for k in trainer.finetune_missing)
    assert trainer.fit().global_step == 1


def test_train_refuses_weights_of_another_architecture(published, tiny_sources, tmp_path):
    _, weights = published
    out = tmp_path / "eps.pt"
    assert cli(["convert", str(weights), "--out", str(out), "--bn-eps", "1e-3"]) == 0
    _, vid = tiny_sources
    cfg = load_config(data=full_width_config([vid], "separate", "r2plus1d", finetune={"checkpoint": str(out)}))
    with pytest.raises(TrainingError, match=r"model.options.bn_eps: source 0.001, model 1e-05"):
        Trainer(cfg, run_dir=tmp_path / "run")
    cfg = load_config(data=tiny_config([vid], "separate", "r2plus1d", finetune={"checkpoint": str(out)}))
    with pytest.raises(TrainingError, match="depth: source 18, model 10"):
        train(cfg, run_dir=tmp_path / "run2")
