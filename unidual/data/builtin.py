"""Built-in datasets, generated locally (nothing is downloaded).

- ``make_default_dataset``: tiny synthetic shapes. Images: 6 shape classes. Videos
  (``video_labels="class_motion"``, the default): 4 of those shapes x 4 motion directions (16
  classes), so a video label needs the shape (appearance, shared with the images) *and* the
  direction (motion: every frame alone, or the average of the frames, is ambiguous about it).
  ``video_labels="class"``: all 6 shapes, each moving in a random direction, labelled by the shape
  only (the images' classes: the few-videos, same-classes regime the demo uses).
(``build_motion_dataset``, CIFAR-motion from real photos, is :mod:`unidual.data.motion`.)

It writes real files (JPEG images or list files, MP4 videos encoded with PyAV, a
Kinetics-format CSV), a ``sources.yaml`` with the matching source dicts and a marker
file; calling again with the same settings reuses the finished dataset.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw

from unidual.data.encode import write_video
from unidual.data.errors import DataError
from unidual.data.sourcefile import read_source_file
from unidual.data.sources import SourceSpec
from unidual.data.specs import ClipSpec, TransformSpec

DEFAULT_VERSION = 2
MOTION_VERSION = 1
SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
VIDEO_SHAPES = SHAPES[:4]
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
CSV_HEADER = "label,youtube_id,time_start,time_end,split\n"
# a video's label (both generators): "<class> <motion>" (appearance and motion), or its class alone (the
# image source's classes: with ``head:`` the images then teach the video head, docs/training.md "Recipe")
VIDEO_LABELS = ("class_motion", "class")


def video_label_settings(video_labels: str) -> dict[str, str]:
    """The marker entry for ``video_labels`` (checked): none for the default, so data generated before
    the option existed stays valid."""
    if video_labels not in VIDEO_LABELS:
        raise DataError(f"video_labels must be one of {list(VIDEO_LABELS)}, got {video_labels!r}")
    return {} if video_labels == VIDEO_LABELS[0] else {"video_labels": video_labels}


# --------------------------------------------------------------------------- caching


def _marker_ok(path: Path, expected: dict[str, Any]) -> bool:
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("settings") == expected
    except (json.JSONDecodeError, AttributeError):
        return False


def read_sources(path: str | Path) -> dict[str, dict[str, Any]]:
    """A builder's ``sources.yaml`` as ``{key: mapping}`` (read by the one sources-file reader)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: sources file not found (build the data first)")
    items = read_source_file(path)
    if not all("key" in d for d in items):
        raise DataError(f"{path}: every source mapping needs a 'key'")
    return {d["key"]: d for d in items}


def _specs_from_yaml(path: Path) -> dict[str, SourceSpec]:
    return {k: SourceSpec.from_dict(d) for k, d in read_sources(path).items()}


def _relative_to_file(spec: SourceSpec, folder: Path) -> dict[str, Any]:
    """A spec as stored in ``folder/sources.yaml``: data folders inside ``folder`` named relative to it
    (the dataset folder moves as one; the reader anchors them there), others absolute."""
    out = spec.to_dict()
    for key in ("root", "train_root", "test_root"):
        if out.get(key) is not None:
            path = Path(out[key]).resolve()
            out[key] = str(path.relative_to(folder.resolve())) if path.is_relative_to(folder.resolve()) else str(path)
    return out


def generated_video_spec(key: str, root: Path, classes: list[str], frames: int) -> SourceSpec:
    """A generator's video source: ``train.csv`` / ``test.csv`` (Kinetics layout) under ``root``, one
    clip of ``frames`` frames, no flips (a flip would swap the left/right motion labels)."""
    return SourceSpec(
        key=key,
        modality="video",
        format="kinetics_csv",
        root=str(root),
        train="train.csv",
        test="test.csv",
        classes=classes,
        clip=ClipSpec(frames=frames, num_clips=1),
        transform=TransformSpec(protocol="custom", flip=False),
    )


def _finish(root: Path, marker: str, settings: dict[str, Any], specs: dict[str, SourceSpec], counts: dict) -> None:
    stored = [_relative_to_file(s, root) for s in specs.values()]
    (root / "sources.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    (root / marker).write_text(json.dumps({"settings": settings, "counts": counts}, indent=2))  # written last


def _clean(root: Path, names: Sequence[str]) -> None:
    for name in names:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _video_name(index: int, duration: int) -> str:
    return f"v{index:05d}_{0:06d}_{duration:06d}"


# --------------------------------------------------------------------------- default (shapes)

_SUPER = 4  # supersampling factor: shapes are drawn 4x larger then downsampled (smooth sub-pixel motion)


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour: tuple[int, ...] | int
) -> None:
    s = _SUPER
    cx, cy, r = cx * s, cy * s, r * s
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        q = r * 0.85
        draw.rectangle((cx - q, cy - q, cx + q, cy + q), fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)], fill=colour)
    elif shape == "cross":
        w = r * 0.35
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    elif shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(1, int(r * 0.4)))
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    else:
        raise ValueError(shape)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A low-contrast textured background (so the shape, not a flat field, carries the class)."""
    level = rng.uniform(40, 200, size=3)
    coarse = rng.normal(0, 8, size=(size // 4, size // 4, 3))
    texture = np.kron(coarse, np.ones((4, 4, 1)))
    noise = rng.normal(0, 4, size=(size, size, 3))
    return np.clip(level + texture + noise, 0, 255)


def _colour(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    """A random colour that stands out from the background's mean."""
    mean = background.reshape(-1, 3).mean(0)
    while True:
        c = rng.integers(0, 256, size=3)
        if np.abs(c - mean).sum() > 180:
            return int(c[0]), int(c[1]), int(c[2])


def _render(
    shape: str, centres: Sequence[tuple[float, float]], r: float, colour: tuple, background: np.ndarray
) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames: the shape at each centre over a fixed background."""
    size = background.shape[0]
    frames = []
    for cx, cy in centres:
        mask = Image.new("L", (size * _SUPER, size * _SUPER), 0)
        _draw_shape(ImageDraw.Draw(mask), shape, cx, cy, r, 255)
        alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.float64)[..., None] / 255.0
        frames.append(background * (1 - alpha) + np.array(colour, dtype=np.float64) * alpha)
    return np.clip(np.stack(frames) + 0.5, 0, 255).astype(np.uint8)


def _moving_centres(
    rng: np.random.Generator, direction: str, frames: int, size: int, r: float
) -> list[tuple[float, float]]:
    """A straight path with a random start, fully inside the frame."""
    dx, dy = DIRECTIONS[direction]
    speed = rng.uniform(1.0, 1.5)
    travel = speed * (frames - 1)
    lo, hi = r + 1.0, size - r - 1.0
    along0 = rng.uniform(lo, hi - travel)  # start position on the motion axis, random
    across = rng.uniform(lo, hi)
    path = []
    for t in range(frames):
        along = along0 + speed * t if (dx + dy) > 0 else (hi - (along0 - lo)) - speed * t
        path.append((along, across) if dx else (across, along))
    return path


def make_default_dataset(
    out: str | Path,
    seed: int = 0,
    *,
    size: int = 32,
    frames: int = 8,
    images_per_class: tuple[int, int] = (150, 30),
    videos_per_class: tuple[int, int] = (60, 12),
    video_labels: str = "class_motion",
) -> dict[str, SourceSpec]:
    """Write (or reuse) the demo dataset under ``out``; returns ``{"shapes": image spec, "motion": video spec}``
    with absolute roots (``out/sources.yaml`` names them relative to itself). ``video_labels``: one of
    ``VIDEO_LABELS`` (module docstring)."""
    labelled = video_label_settings(video_labels)
    root = Path(out).absolute()
    settings: dict[str, Any] = {
        "version": DEFAULT_VERSION,
        "seed": seed,
        "size": size,
        "frames": frames,
        "images_per_class": list(images_per_class),
        "videos_per_class": list(videos_per_class),
        **labelled,
    }
    if _marker_ok(root / "unidual-default.json", settings) and (root / "sources.yaml").is_file():
        return _specs_from_yaml(root / "sources.yaml")
    if size % 2 or size < 16 or frames < 2:
        raise DataError(f"make_default_dataset: size must be even and >= 16, frames >= 2 (got {size}, {frames})")
    root.mkdir(parents=True, exist_ok=True)
    _clean(root, ("shapes", "motion", "sources.yaml", "unidual-default.json"))
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for split, n in zip(("train", "test"), images_per_class):
        for shape in SHAPES:
            folder = root / "shapes" / split / shape
            folder.mkdir(parents=True)
            for i in range(n):
                bg = _background(rng, size)
                r = rng.uniform(5.5, 8.5)
                centre = (rng.uniform(r + 1, size - r - 1), rng.uniform(r + 1, size - r - 1))
                img = _render(shape, [centre], r, _colour(rng, bg), bg)[0]
                Image.fromarray(img).save(folder / f"{i:04d}.jpg", quality=95)
        counts[f"images/{split}"] = n * len(SHAPES)
    by_class = video_labels == "class"
    video_classes = list(SHAPES) if by_class else [f"{s} {d}" for s in VIDEO_SHAPES for d in DIRECTIONS]
    fps = frames  # every video lasts one second
    number = 0
    for split, n in zip(("train", "test"), videos_per_class):
        rows = []
        for label in video_classes:
            for _ in range(n):
                shape, direction = (label, str(rng.choice(list(DIRECTIONS)))) if by_class else label.split(" ")
                bg = _background(rng, size)
                r = rng.uniform(5.5, 7.0)
                path = _moving_centres(rng, direction, frames, size, r)
                name = _video_name(number, 1)
                write_video(
                    root / "motion" / split / label / f"{name}.mp4",
                    _render(shape, path, r, _colour(rng, bg), bg),
                    fps=fps,
                )
                rows.append(f"{label},{name.split('_')[0]},0,1,{split}\n")
                number += 1
        (root / "motion" / f"{split}.csv").write_text(CSV_HEADER + "".join(rows))
        counts[f"videos/{split}"] = len(rows)
    specs = {
        "shapes": SourceSpec(
            key="shapes",
            modality="image",
            format="folder",
            root=str(root / "shapes"),
            train="train",
            test="test",
            classes=list(SHAPES),
            transform=TransformSpec(protocol="custom", flip=True),
        ),
        "motion": generated_video_spec("motion", root / "motion", video_classes, frames),
    }
    _finish(root, "unidual-default.json", settings, specs, counts)
    return specs


# --------------------------------------------------------------------------- CIFAR-motion
