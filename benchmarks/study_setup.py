"""The study's training configuration on a reduced CIFAR-motion set, for the loader and memory benchmarks.

``configs/cpu/study/base.yaml`` is read as it is; only each source's location (format, root,
train/test lists, classes) is replaced by a CIFAR-motion set built into a temporary folder with
the study's own build settings (``data:`` of configs/cpu/study/study.yaml: motions, frames,
size) but fewer videos and images, exactly as the study runner fills them from the full set.
Clip sampling, transforms, model, batch size and worker count stay the study's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from common import ROOT

from unidual.data import shared_data_dir
from unidual.data.builtin import read_sources
from unidual.data.motion import build_motion_dataset
from unidual.train.config import TrainConfig, load_config, read_yaml

BASE = ROOT / "configs" / "cpu" / "study" / "base.yaml"
STUDY = ROOT / "configs" / "cpu" / "study" / "study.yaml"
LOCATION = ("format", "root", "train", "test", "classes")
BUILD_KEYS = ("motions", "frames", "size")


def build_settings() -> dict[str, Any]:
    """motions / frames / size of the study's data build (defaults of the builder where absent)."""
    if not STUDY.is_file():
        return {}
    data = (yaml.safe_load(STUDY.read_text()) or {}).get("data") or {}
    return {k: data[k] for k in BUILD_KEYS if k in data}


def reduced_study_config(
    out: Path,
    *,
    train_videos: int = 600,
    test_videos: int = 60,
    image_train: int = 3000,
    image_test: int = 300,
    overrides: tuple[str, ...] = (),
) -> tuple[TrainConfig, dict[str, Any]]:
    """The study config with its sources pointing at a reduced CIFAR-motion set built under ``out``."""
    archive = shared_data_dir() / "images" / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: CIFAR-10 archive not found (set UNIDUAL_DATA to the shared data folder)")
    settings = build_settings()
    t0 = time.perf_counter()
    build_motion_dataset(
        archive,
        out,
        train_videos=train_videos,
        test_videos=test_videos,
        image_train=image_train,
        image_test=image_test,
        **settings,
    )
    built = read_sources(out / "sources.yaml")  # the one reader: paths in it are relative to the file
    raw = read_yaml(BASE)
    for source in raw["sources"]:
        source.update({k: built[source["key"]][k] for k in LOCATION})
    cfg = load_config(data=raw, overrides=overrides)
    info = {
        "build_seconds": time.perf_counter() - t0,
        "build": settings,
        "train_videos": train_videos,
        "test_videos": test_videos,
        "image_train": image_train,
        "image_test": image_test,
    }
    return cfg, info
