"""A tiny photo folder and a tiny study (configs + study file) for the study tests: seconds, not minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

CLASSES = {"red": (220, 40, 40), "blue": (40, 40, 220)}
SIZE = 32


def make_photos(root: Path, train: int = 10, test: int = 6, seed: int = 0) -> Path:
    """``train/<class>/`` and ``test/<class>/`` JPEG photos: a coloured square on noise (the class is its colour)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        for name, colour in CLASSES.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 70, (SIZE, SIZE, 3)).astype(np.uint8)
                y, x = rng.integers(2, SIZE - 14, 2)
                img[y : y + 12, x : x + 12] = colour
                Image.fromarray(img).save(folder / f"{i:03d}.jpg", quality=95)
    return root


TINY_BASE: dict[str, Any] = {
    "regime": "unidual_aux",
    "sources": [
        {
            "key": "img",
            "modality": "image",
            "format": "folder",
            "root": "unused",
            "transform": {"protocol": "custom", "flip": False},
        },
        {
            "key": "vid",
            "modality": "video",
            "format": "folder",
            "root": "unused",
            "clip": {"frames": 4, "num_clips": 1},
            "transform": {"protocol": "custom", "flip": False},
        },
    ],
    "model": {"name": "unidual_aux", "depth": 10, "width": 0.125, "frames": 4},
    "optim": {"lr": 0.05, "batch_size": 4, "weight_decay": 0.0},
    "schedule": {"epochs": 2, "warmup_epochs": 0, "kind": "constant"},
    "data": {"epoch_size": 16, "eval_batch_size": 16, "eval_limit": 4},
    "run": {"device": "cpu", "progress": False, "plots": False, "eval_every": 0, "save_every": 0},
}


def write_tiny_study(
    root: Path, photos: Path, models: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Training configs r2d / r2plus1d(_finetuned) / unidual_aux and a study file over built tiny data."""
    image, video = TINY_BASE["sources"]
    files = {
        "base.yaml": TINY_BASE,
        "r2d.yaml": {
            "base": "base.yaml",
            "regime": "separate",
            "sources": [image],
            "model": {"name": "r2d"},
            "data": {"epoch_size": 8},
        },
        "r2plus1d_finetuned.yaml": {
            "base": "base.yaml",
            "regime": "finetune",
            "sources": [video],
            "model": {"name": "r2plus1d"},
            "data": {"epoch_size": 8},
            "finetune": {"checkpoint": "set-by-the-study", "convert": "inflate"},
        },
        "unidual_aux.yaml": {"base": "base.yaml"},
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).write_text(yaml.safe_dump(content, sort_keys=False))
    study = {
        "name": "tiny",
        "title": "Tiny study",
        "out": str(root / "out"),
        "seeds": [0],
        "data": {
            "build": "motion",
            "image_root": str(photos),
            "out": str(root / "data"),
            "motions": ["left", "right"],
            "frames": 6,
            "size": 32,
            "train_videos": 8,
            "test_videos": 4,
            "image_key": "img",
            "video_key": "vid",
        },
        "eval": {"clips": 2, "batch_size": 16},
        "columns": [{"source": "vid", "title": "Vid"}, {"source": "img", "title": "Img"}],
        "models": models
        or [
            {"id": "r2d", "row": "R2D", "config": "r2d.yaml", "group": "N/A"},
            {
                "id": "r2plus1d_ft",
                "row": "R(2+1)D-finetuned",
                "config": "r2plus1d_finetuned.yaml",
                "group": "Pretrain",
                "pretrained": "r2d",
            },
            {"id": "unidual_aux", "row": "UniDual-Aux", "config": "unidual_aux.yaml", "group": "Joint training"},
        ],
        **(extra or {}),
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
