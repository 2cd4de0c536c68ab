"""The study's data: build (or reuse) the datasets, then fill the training configs' sources from them.

The training configs say how to sample each source (``clip``, ``transform``); *where* the
data is (``format``, ``root``, ``train``, ``test``, ``classes``) is replaced by what the
builder wrote in its ``sources.yaml``, with absolute paths. That keeps one copy of the
locations and makes a study independent of the directory it is started from.

``data:`` in a study file is one of
- ``{build: default, out: ..., **make_default_dataset options}``: the embedded shapes dataset (the demo's)
- ``{build: motion, image_root: ..., out: ..., **build_motion_dataset options}``
- ``{build: three_source, image_root: ..., out: ..., **build_three_source options}``
- ``{sources: FILE}``: an existing ``sources.yaml`` (a list of source dicts).

Builders are idempotent (a marker file records their settings), so a second run reuses the data.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from unidual.data.archive import is_archive, open_archive
from unidual.data.builtin import make_default_dataset, read_sources
from unidual.data.motion import build_motion_dataset
from unidual.data.sources import SourceSpec
from unidual.study.config import Study, StudyError
from unidual.yamlconfig import deep_merge

LOCATION_KEYS = ("format", "root", "train", "test", "classes")
THREE_SOURCE_VERSION = 1


def prepare_data(study: Study, progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, Any]] | None:
    """Build or read the study's data; ``{key: source dict}`` or None when the study has no ``data:``."""
    spec = study.data
    if spec is None:
        return None
    spec = dict(spec)
    if "sources" in spec:
        if set(spec) != {"sources"}:
            raise StudyError(f"{study.path}: data: 'sources: FILE' takes no other keys, got {sorted(spec)}")
        return read_sources(Path(spec["sources"]))

    kind = spec.pop("build", None)
    builders: dict[str, Callable[..., dict[str, SourceSpec]]] = {
        "default": make_default_dataset,
        "motion": build_motion_dataset,
        "three_source": build_three_source,
    }
    if kind not in builders:
        raise StudyError(
            f"{study.path}: data.build must be one of {sorted(builders)} (or give data.sources), got {kind!r}"
        )
    builder = builders[str(kind)]
    params = inspect.signature(builder).parameters
    # Each builder's own signature says what it needs (no default) and what it accepts.
    for required in (name for name, p in params.items() if p.default is inspect.Parameter.empty):
        if required not in spec:
            raise StudyError(f"{study.path}: data.{required} is required for build: {kind}")
    allowed = set(params) - {"progress"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise StudyError(f"{study.path}: data: unknown option(s) {extra} for build: {kind}; allowed: {sorted(allowed)}")
    spec = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}  # YAML lists -> builder tuples
    if "progress" in params:
        spec["progress"] = progress
    specs = builder(**spec)
    return {key: s.to_dict() for key, s in specs.items()}


def built_sources(study: Study) -> dict[str, dict[str, Any]] | None:
    """The study's data if it is already there (no building): for --dry-run."""
    spec = study.data or {}
    path = Path(spec["sources"]) if "sources" in spec else Path(spec.get("out", "")) / "sources.yaml"
    return read_sources(path) if spec and path.is_file() else None


def fill_sources(
    entries: Sequence[Mapping[str, Any]], built: Mapping[str, Mapping[str, Any]], where: str
) -> list[dict[str, Any]]:
    """Each config source entry with its location (``LOCATION_KEYS``) taken from the built source of its key.

    Sampling and transform settings stay the config's (they differ per study: clip length,
    flips); keys the entry leaves out come from the built source.
    """

    out = []
    for i, entry in enumerate(entries):
        key = entry.get("key") if isinstance(entry, Mapping) else None
        if not isinstance(key, str) or key not in built:
            raise StudyError(f"{where}: sources.{i}: key {key!r} is not in the study's data (it has {sorted(built)})")
        if "modality" in entry and entry["modality"] != built[key].get("modality"):
            raise StudyError(
                f"{where}: sources.{i} ({key!r}): modality {entry['modality']!r} but the data "
                f"holds {built[key].get('modality')!r}"
            )
        merged = deep_merge(dict(built[key]), entry)
        merged.update({k: built[key][k] for k in LOCATION_KEYS if k in built[key]})
        out.append(merged)
    return out


# --------------------------------------------------------------------------- three sources (Table 3)


def _read_member(root: str, member: str) -> bytes:
    if is_archive(root):
        return open_archive(root).read(member)
    return (Path(root) / member).read_bytes()


def _carve_pool(list_file: Path, image_root: str, pool: Path, per_class: int, seed: int) -> list[str]:
    """Move ``per_class`` photos per class of an image list into a class-folder pool; return the lines left."""
    lines = [ln for ln in list_file.read_text().splitlines() if ln.strip()]
    by_class: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        by_class.setdefault(line.rsplit(None, 1)[1], []).append(i)
    rng = random.Random(seed)
    taken: set[int] = set()
    for name, indices in sorted(by_class.items()):
        if len(indices) <= per_class:
            raise StudyError(
                f"{list_file}: class {name!r} has {len(indices)} photos, the second video "
                f"dataset needs more than {per_class}"
            )
        chosen = sorted(rng.sample(indices, per_class))
        folder = pool / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in chosen:
            member = lines[k].rsplit(None, 1)[0]
            (folder / f"{k:06d}_{Path(member).name}").write_bytes(_read_member(image_root, member))
        taken.update(chosen)
    return [line for i, line in enumerate(lines) if i not in taken]


def build_three_source(
    image_root: str | Path,
    out: str | Path,
    *,
    motions: Sequence[str] = ("left", "right", "zoom_in"),
    motions_b: Sequence[str] = ("rotate_cw", "rotate_ccw", "zoom_out"),
    frames: int = 16,
    size: int = 32,
    train_videos: int = 3000,
    test_videos: int = 600,
    train_videos_b: int | None = None,
    test_videos_b: int | None = None,
    seed: int = 0,
    image_key: str = "cifar",
    video_key: str = "motion",
    video_key_b: str = "motion_b",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """One image source and two motion-video sources built from three disjoint photo pools.

    1. CIFAR-motion A (``motions``) with the builder; its videos use photos its image lists exclude.
    2. A pool for B is carved out of A's image lists (per class, train and test separately) and
       written as class folders; the image source keeps the rest.
    3. CIFAR-motion B (``motions_b``) is built from that pool by the same builder.
    So no photo is in two of {images, A videos, B videos}: the three tasks share classes and
    appearance statistics, not examples. Returns ``{image_key, video_key, video_key_b}`` SourceSpecs.
    """

    out = Path(out)
    train_b = train_videos if train_videos_b is None else train_videos_b
    test_b = test_videos if test_videos_b is None else test_videos_b
    settings = {
        "version": THREE_SOURCE_VERSION,
        "image_root": str(Path(image_root).resolve()),
        "motions": list(motions),
        "motions_b": list(motions_b),
        "frames": frames,
        "size": size,
        "videos": [train_videos, test_videos],
        "videos_b": [train_b, test_b],
        "seed": seed,
        "keys": [image_key, video_key, video_key_b],
    }
    marker = out / "unidual-three-source.json"
    if marker.is_file() and (out / "sources.yaml").is_file():
        try:
            if json.loads(marker.read_text()).get("settings") == settings:
                return {k: SourceSpec.from_dict(d) for k, d in read_sources(out / "sources.yaml").items()}
        except json.JSONDecodeError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    a = build_motion_dataset(
        image_root,
        out / "a",
        motions=tuple(motions),
        frames=frames,
        size=size,
        train_videos=train_videos,
        test_videos=test_videos,
        seed=seed,
        image_key=image_key,
        video_key=video_key,
        progress=progress,
    )
    classes = list(a[image_key].classes or [])
    pool = out / "pool-b"
    shutil.rmtree(pool, ignore_errors=True)
    (out / "images").mkdir(exist_ok=True)
    counts: dict[str, int] = {}
    for offset, (split, n_videos) in enumerate((("train", train_b), ("test", test_b))):
        per_label = max(1, math.ceil(n_videos / (len(classes) * len(motions_b))))
        per_class = per_label * len(motions_b) + 1  # the builder keeps >= 1 photo per class for its own image split
        keep = _carve_pool(
            out / "a" / "images" / f"{split}.txt", str(a[image_key].root), pool / split, per_class, seed + 101 + offset
        )
        (out / "images" / f"{split}.txt").write_text("".join(line + "\n" for line in keep))
        counts[f"images/{split}"] = len(keep)
    b = build_motion_dataset(
        pool,
        out / "b",
        motions=tuple(motions_b),
        frames=frames,
        size=size,
        train_videos=train_b,
        test_videos=test_b,
        seed=seed + 1,
        image_key=f"{image_key}_pool_b",
        video_key=video_key_b,
        progress=progress,
    )
    image = a[image_key].to_dict()
    image.update(train=str((out / "images" / "train.txt").resolve()), test=str((out / "images" / "test.txt").resolve()))
    specs = {image_key: SourceSpec.from_dict(image), video_key: a[video_key], video_key_b: b[video_key_b]}
    (out / "sources.yaml").write_text(yaml.safe_dump([s.to_dict() for s in specs.values()], sort_keys=False))
    marker.write_text(json.dumps({"settings": settings, "counts": counts}, indent=2))  # written last
    return specs
