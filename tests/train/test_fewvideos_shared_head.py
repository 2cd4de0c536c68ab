"""configs/cpu/fewvideos_shared_head.yaml: CIFAR-motion videos labelled by class only, the photos feeding the
video head. Its data is built by ``unidual data build-motion --video-labels class``; here from a tiny
photo archive with CIFAR-10's class names, and the shipped config trains two updates on it."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from unidual import checkpoint as ckpt
from unidual.cli import main as cli
from unidual.data import build_dataset
from unidual.data.builtin import read_sources
from unidual.train.config import load_config
from unidual.train.trainer import train

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cpu" / "fewvideos_shared_head.yaml"
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_like_archive(tmp_path: Path, per_split: int = 4) -> Path:
    root, rng = tmp_path / "photos", np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CIFAR10:
            (root / split / name).mkdir(parents=True)
            for i in range(per_split):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                    root / split / name / f"{i}.png"
                )
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root, arcname=".")
    return archive


def test_videos_labelled_by_class_and_the_shipped_config_trains(tmp_path, capsys):
    archive, out = cifar_like_archive(tmp_path), tmp_path / "built"
    build = ["data", "build-motion", str(archive), str(out), "--frames", "16", "--train-videos", "30"]
    assert cli([*build, "--test-videos", "30", "--video-labels", "class"]) == 0
    assert "motion: video (kinetics_csv), 10 classes" in capsys.readouterr().out
    built = read_sources(out / "sources.yaml")
    videos = build_dataset(built["motion"], "train")
    assert videos.classes == CIFAR10 and len(videos) == 30  # the same 30 videos, 3 motions per class
    assert built["motion"]["classes"] == built["cifar"]["classes"] == CIFAR10

    located = [f"sources.{i}.{k}={built[key][k]}" for i, key in enumerate(("cifar", "motion"))
               for k in ("root", "train", "test")]  # fmt: skip
    small = ["model.width=0.125", "optim.batch_size=4", "data.epoch_size=16", "data.eval_limit=4",
             "data.eval_batch_size=8", "run.max_steps=2", "run.device=cpu", "run.progress=false", "run.plots=false"]  # fmt: skip
    cfg = load_config(CONFIG, [*located, *small])
    assert [(s.key, s.head) for s in cfg.sources] == [("cifar", "motion"), ("motion", None)]
    result = train(cfg, run_dir=tmp_path / "run")
    assert result.global_step == 2 and set(result.metrics) == {"cifar", "motion"}
    payload = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")
    assert set(payload["model_spec"]["heads"]) == {"motion"} and payload["sources"]["cifar"]["head"] == "motion"
