"""Tiny generated datasets for trainer tests: coloured images and moving-square videos (real JPEG / MP4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from unidual.data.encode import write_video

SIZE = 32
FRAMES = 4
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def _image(colour: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 60, (SIZE, SIZE, 3)).astype(np.uint8)
    y, x = rng.integers(4, SIZE - 16, 2)
    img[y : y + 12, x : x + 12] = colour
    return img


def _video(direction: int, rng: np.random.Generator) -> np.ndarray:
    frames = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8) + 20
    y, x = rng.integers(6, SIZE - 18, 2)
    for t in range(FRAMES):
        xx = int(np.clip(x + direction * 3 * t, 0, SIZE - 10))
        frames[t, y : y + 10, xx : xx + 10] = (230, 230, 230)
    return frames


def make_tiny_sources(root: Path, per_class: int = 6, test_per_class: int = 2, seed: int = 0) -> list[dict]:
    """Two image classes (colour) and two video classes (motion direction); returns SourceSpec dicts."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for name, colour in COLOURS.items():
            folder = root / "img" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(_image(colour, rng)).save(folder / f"{i}.jpg", quality=95)
        for name, direction in (("left", -1), ("right", 1)):
            for i in range(n):
                write_video(root / "vid" / split / name / f"{i}.mp4", _video(direction, rng), fps=8)
    transform = {"protocol": "custom", "flip": False}
    clip = {"frames": FRAMES, "num_clips": 1}
    return [
        {"key": "img", "modality": "image", "format": "folder", "root": str(root / "img"), "transform": transform},
        {
            "key": "vid",
            "modality": "video",
            "format": "folder",
            "root": str(root / "vid"),
            "transform": transform,
            "clip": clip,
        },
    ]


def tiny_config(sources: list[dict], regime: str = "unidual_aux", model: str = "unidual_aux", **sections) -> dict:
    """A config dict for a seconds-long CPU run (slim depth-10 model, 32 px, 4 frames)."""
    cfg = {
        "regime": regime,
        "sources": sources,
        "model": {"name": model, "depth": 10, "width": 0.125},
        "optim": {"lr": 0.05, "batch_size": 4, "weight_decay": 0.0},
        "schedule": {"epochs": 2, "warmup_epochs": 0, "kind": "constant"},
        "data": {"epoch_size": 16, "eval_batch_size": 8},
        "run": {"device": "cpu", "progress": False, "plots": False},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg
