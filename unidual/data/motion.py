"""CIFAR-motion: a video dataset made from any image class folder / archive, generated locally.

``build_motion_dataset``: real photos that pan, zoom or rotate; label = image class x motion (or the
image class only, ``video_labels="class"``). Image and video examples come from disjoint photo
pools. It writes real files (list files for the images, MP4 videos encoded with PyAV, a
Kinetics-format CSV), a ``sources.yaml`` with the matching source dicts and a marker file; calling
again with the same settings reuses the finished dataset. (The demo's shapes dataset is
:mod:`unidual.data.builtin`.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from unidual.data.builtin import (
    CSV_HEADER,
    MOTION_VERSION,
    _clean,
    _finish,
    _marker_ok,
    _specs_from_yaml,
    generated_video_spec,
    video_label_settings,
)
from unidual.data.encode import write_video
from unidual.data.errors import DataError
from unidual.data.sources import SourceDataset, SourceSpec
from unidual.data.specs import TransformSpec

MOTIONS = ("left", "right", "up", "down", "zoom_in", "zoom_out", "rotate_cw", "rotate_ccw")
DEFAULT_MOTIONS = ("left", "right", "zoom_in")


def _motion_frames(photo: Image.Image, motion: str, frames: int, size: int, rng: random.Random) -> np.ndarray:
    """The photo seen through a moving ``size`` window: content pans, zooms or rotates."""
    big = photo.resize((size * 3 // 2, size * 3 // 2), Image.Resampling.BICUBIC)
    extent = big.width - size  # room for the window to move
    out = []
    across = rng.uniform(0, extent)
    for t in range(frames):
        u = t / (frames - 1)
        if motion in ("left", "right", "up", "down"):
            along = u * extent if motion in ("left", "up") else (1 - u) * extent  # content moves opposite the window
            x0, y0 = (along, across) if motion in ("left", "right") else (across, along)
            frame = big.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + size, y0 + size))
        elif motion in ("zoom_in", "zoom_out"):
            scale = u if motion == "zoom_in" else 1 - u
            w = big.width - scale * extent
            c = big.width / 2
            frame = big.resize(
                (size, size), Image.Resampling.BILINEAR, box=(c - w / 2, c - w / 2, c + w / 2, c + w / 2)
            )
        elif motion in ("rotate_cw", "rotate_ccw"):
            angle = (u - 0.5) * 40.0 * (-1 if motion == "rotate_cw" else 1)  # PIL rotates counter-clockwise
            turned = big.rotate(angle, resample=Image.Resampling.BILINEAR)
            off = extent / 2
            frame = turned.resize((size, size), Image.Resampling.BILINEAR, box=(off, off, off + size, off + size))
        else:
            raise DataError(f"unknown motion {motion!r}; choose from {MOTIONS}")
        out.append(np.asarray(frame, dtype=np.uint8))
    return np.stack(out)


def _photo_pools(image_root: str | Path) -> tuple[SourceDataset, SourceDataset]:
    spec = SourceSpec(key="photos", modality="image", format="folder", root=str(image_root))
    try:
        return SourceDataset(spec, "train"), SourceDataset(spec, "test")
    except DataError as exc:
        raise DataError(f"{image_root}: need train/<class>/ and test/<class>/ image folders ({exc})") from exc


def _split_pool(
    ds: SourceDataset, per_video_class: int, image_limit: int | None, seed: int
) -> tuple[dict[int, list[int]], list[int]]:
    """Per class: indices reserved for videos, and the remaining indices for the image split."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(ds.labels):
        by_class.setdefault(label, []).append(i)
    video, image = {}, []
    for label, indices in sorted(by_class.items()):
        rng.shuffle(indices)
        if len(indices) <= per_video_class:
            raise DataError(
                f"{ds.spec.root}: class {ds.classes[label]!r} has {len(indices)} photos in "
                f"{ds.split!r}, need more than {per_video_class} for the videos"
            )
        video[label] = indices[:per_video_class]
        image += indices[per_video_class:]
    image.sort()
    if image_limit is not None:
        keep = sorted(random.Random(seed + 1).sample(image, min(image_limit, len(image))))
        image = keep
    return video, image


def build_motion_dataset(
    image_root: str | Path,
    out: str | Path,
    *,
    motions: Sequence[str] = DEFAULT_MOTIONS,
    frames: int = 8,
    size: int = 32,
    train_videos: int = 3000,
    test_videos: int = 600,
    image_train: int | None = None,
    image_test: int | None = None,
    seed: int = 0,
    image_key: str = "cifar",
    video_key: str = "motion",
    video_labels: str = "class_motion",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, SourceSpec]:
    """Turn an image class folder (or archive) into image splits + a labelled motion-video dataset.

    ``train_videos``/``test_videos`` are totals spread evenly over the ``classes x motions``
    combinations; each video uses its own photo, and the image splits (list files over
    ``image_root``) hold only photos no video uses. ``video_labels``: ``class_motion`` labels a
    video ``"<class> <motion>"``, ``class`` by its photo's class only (the same videos, the image
    source's classes). Returns ``{image_key, video_key}`` specs.
    """
    out = Path(out)
    motions = tuple(motions)
    bad = [m for m in motions if m not in MOTIONS]
    if bad or not motions or len(set(motions)) != len(motions):
        raise DataError(f"motions {list(motions)}: choose distinct values from {list(MOTIONS)}")
    labelled = video_label_settings(video_labels)
    if size % 2 or size < 8 or frames < 2:
        raise DataError(f"build_motion_dataset: size must be even and >= 8, frames >= 2 (got {size}, {frames})")
    settings = {
        "version": MOTION_VERSION,
        "image_root": str(Path(image_root).resolve()),
        "motions": list(motions),
        "frames": frames,
        "size": size,
        "train_videos": train_videos,
        "test_videos": test_videos,
        "image_train": image_train,
        "image_test": image_test,
        "seed": seed,
        "keys": [image_key, video_key],
        **labelled,
    }
    if _marker_ok(out / "unidual-motion.json", settings) and (out / "sources.yaml").is_file():
        return _specs_from_yaml(out / "sources.yaml")
    train_pool, test_pool = _photo_pools(image_root)
    classes = train_pool.classes
    if test_pool.classes != classes:
        raise DataError(f"{image_root}: train and test class folders differ")
    combos = len(classes) * len(motions)  # videos are spread over (class, motion) whatever their label
    labels = [f"{c} {m}" for c in classes for m in motions] if video_labels == "class_motion" else list(classes)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out, ("images", "videos", "sources.yaml", "unidual-motion.json"))
    (out / "images").mkdir()
    counts: dict[str, int] = {}
    total = sum(max(1, math.ceil(n / combos)) * combos for n in (train_videos, test_videos))
    done = 0
    for split, pool, n_videos, limit in (
        ("train", train_pool, train_videos, image_train),
        ("test", test_pool, test_videos, image_test),
    ):
        per_label = max(1, math.ceil(n_videos / combos))
        video_idx, image_idx = _split_pool(pool, per_label * len(motions), limit, seed + (0 if split == "train" else 7))
        root_text = str(Path(image_root))
        lines = []
        for i in image_idx:
            member = (
                pool.files[i].split("::", 1)[1]
                if "::" in pool.files[i]
                else str(Path(pool.files[i]).relative_to(root_text))
            )
            lines.append(f"{member} {classes[pool.labels[i]]}\n")
        (out / "images" / f"{split}.txt").write_text("".join(lines))
        counts[f"images/{split}"] = len(lines)
        rng = random.Random(seed * 31 + (0 if split == "train" else 1))
        rows = []
        for label, indices in video_idx.items():
            for k, photo_index in enumerate(indices):
                motion = motions[k % len(motions)]
                name = f"{label:02d}{photo_index:06d}"
                clip = _motion_frames(
                    train_pool.read_image(photo_index) if split == "train" else test_pool.read_image(photo_index),
                    motion,
                    frames,
                    size,
                    rng,
                )
                text = f"{classes[label]} {motion}" if video_labels == "class_motion" else classes[label]
                write_video(out / "videos" / split / text / f"{name}_{0:06d}_{1:06d}.mp4", clip, fps=frames)
                rows.append(f"{text},{name},0,1,{split}\n")
                done += 1
                if progress is not None:
                    progress(done, total)
        (out / "videos" / f"{split}.csv").write_text(CSV_HEADER + "".join(rows))
        counts[f"videos/{split}"] = len(rows)
    specs = {
        image_key: SourceSpec(
            key=image_key,
            modality="image",
            format="list",
            root=str(Path(image_root).resolve()),
            train=str((out / "images" / "train.txt").resolve()),
            test=str((out / "images" / "test.txt").resolve()),
            classes=list(classes),
            transform=TransformSpec(protocol="custom", flip=True),
        ),
        video_key: generated_video_spec(video_key, (out / "videos").resolve(), labels, frames),
    }
    _finish(out, "unidual-motion.json", settings, specs, counts)
    return specs
