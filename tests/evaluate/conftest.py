"""A slim UniDual checkpoint plus a tiny on-disk image + video dataset for the evaluate tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

IMAGE_CLASSES = ["circle", "square", "stripe"]
VIDEO_CLASSES = ["left", "right"]
TRANSFORM = {"protocol": "custom", "resize": 36, "crop": 32}


def _write_images(root: Path, per_class: int = 2) -> None:
    rng = np.random.default_rng(0)
    for c, name in enumerate(IMAGE_CLASSES):
        d = root / "test" / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(d / f"{name}{i}.png")


def _write_videos(root: Path, per_class: int = 2) -> None:
    from unidual.data.encode import write_video

    rng = np.random.default_rng(1)
    for c, name in enumerate(VIDEO_CLASSES):
        d = root / "test" / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            frames = rng.integers(0, 255, (10, 40, 48, 3), dtype=np.uint8)
            write_video(d / f"{name}{i}.mp4", frames, fps=8)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> dict:
    """{"checkpoint", "images", "videos", "model"}: a saved slim unidual_aux and its test data."""
    from unidual.checkpoint import save_checkpoint
    from unidual.models import create_model

    root = tmp_path_factory.mktemp("tiny_run")
    _write_images(root / "shapes")
    _write_videos(root / "moves")
    torch.manual_seed(0)
    model = create_model(
        "unidual_aux",
        depth=10,
        width=0.125,
        heads={"shapes": len(IMAGE_CLASSES), "moves": len(VIDEO_CLASSES)},
        modalities={"shapes": "image", "moves": "video"},
        frames=4,
    )
    # Non-trivial BN statistics so folding and exports are really exercised.
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    sources = [
        {
            "key": "shapes",
            "modality": "image",
            "format": "folder",
            "root": str(root / "shapes"),
            "transform": TRANSFORM,
        },
        {
            "key": "moves",
            "modality": "video",
            "format": "folder",
            "root": str(root / "moves"),
            "clip": {"frames": 4, "num_clips": 3},
            "transform": TRANSFORM,
        },
    ]
    ckpt = save_checkpoint(
        root / "run" / "best.pt",
        {
            "model": model.state_dict(),
            "model_spec": model.spec,
            "sources": {
                "shapes": {"modality": "image", "classes": IMAGE_CLASSES},
                "moves": {"modality": "video", "classes": VIDEO_CLASSES},
            },
            "config": {"sources": sources},
        },
    )
    return {
        "checkpoint": ckpt,
        "run": root / "run",
        "images": root / "shapes",
        "videos": root / "moves",
        "model": model.eval(),
    }
