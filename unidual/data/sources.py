"""Dataset sources: specs, on-disk formats, label maps and the per-source Dataset.

Formats (``SourceSpec.format``):

- ``folder``: ``root/<split>/<class>/<file>`` (ImageFolder layout, images or videos);
  ``root`` may be a ``.tar``/``.tar.gz`` archive for images.
- ``list``: a text file of ``path label`` lines (label = class name or index), paths
  relative to ``root`` (a folder or an archive).
- ``kinetics_csv``: ``label,youtube_id,time_start,time_end[,split]`` with a header;
  files are found anywhere under ``root`` as ``{id}_{start:06d}_{end:06d}.<ext>``
  (trimmed) or ``{id}.<ext>`` (untrimmed: the row's time window is used).
- ``mmaction_list``: ``relative/path.mp4 label`` lines with integer labels.
- ``mmaction_rawframes``: ``frame_dir total_frames label`` lines; each ``frame_dir`` holds
  the extracted frames ``img_00001.jpg``, ... (mmaction2's ``RawframeDataset``).

Every format takes optional ``train_root`` / ``test_root`` (default ``root``): mmaction2
keeps one folder per split (its ``data_prefix``) with list paths relative to it. The list
formats drop entries whose file is absent when the index is built if ``skip_missing`` is
set, and fail naming them otherwise (``SourceDataset.missing`` keeps the dropped ones).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from unidual.data import archive as archive_mod
from unidual.data import sampling
from unidual.data.decode import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoInfo,
    image_array,
    load_image,
    probe_video,
    read_clip,
)
from unidual.data.errors import DataError
from unidual.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Plan, apply_plan
from unidual.data.views import clip_views
from unidual.pathways import MODALITIES
from unidual.yamlconfig import ConfigError
from unidual.yamlconfig import from_dict as build_dataclass

FORMATS = ("folder", "list", "kinetics_csv", "mmaction_list", "mmaction_rawframes")
#: Raw frames carry no frame rate; a nominal one lets ``clip.fps`` still mean something.
RAWFRAME_FPS = 30.0
TEST_SPLIT_NAMES = {"test", "val", "valid", "validate", "validation"}


# --------------------------------------------------------------------------- specs


def _from_dict(cls, d: Any, where: str):
    """Typed build through the project's one config loader; its errors become DataError (the data floor's)."""
    try:
        return build_dataclass(cls, d, where)
    except ConfigError as exc:
        raise DataError(str(exc)) from None


@dataclass
class ClipSpec:
    """How clips are cut from a video (see ``unidual.data.sampling``)."""

    frames: int = 8
    stride: int = 1
    fps: float | None = None  # sample at this rate (times stride) instead of every native frame
    num_clips: int = 10  # clips per video at test time
    loop: bool = True  # short videos: loop (True) or pad with the last frame (False)

    def __post_init__(self) -> None:
        for name in ("frames", "stride", "num_clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataError(f"clip.{name}: must be an integer >= 1, got {value!r}")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and self.fps > 0):
            raise DataError(f"clip.fps: must be > 0 or null, got {self.fps!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipSpec:
        return _from_dict(cls, d, "clip")


@dataclass
class TransformSpec:
    """Protocol ``A`` / ``B`` (the paper's) or ``custom`` (``resize``, ``crop``, ``test_crops``)."""

    protocol: str = "A"
    resize: int | list[int] | None = None  # custom: shorter side, or [h, w]; None keeps the size
    crop: int | None = None  # custom: square crop side; None keeps the whole frame
    test_crops: int | None = None  # crops per test clip (1 centre, 3 along the longer side)
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    flip: bool = True  # random horizontal flip in training (turn off for left/right motion labels)
    max_side: int | None = None  # longer side frames are first scaled down to (None: no bound)

    def __post_init__(self) -> None:
        if self.protocol not in ("A", "B", "custom"):
            raise DataError(f"transform.protocol: must be 'A', 'B' or 'custom', got {self.protocol!r}")
        presets = {"A": ([128, 171], 112), "B": (256, 224)}
        if self.protocol in presets:
            resize, crop = presets[self.protocol]
            given = (
                None
                if self.resize is None
                else (list(self.resize) if isinstance(self.resize, (list, tuple)) else self.resize)
            )
            if given not in (None, resize) or self.crop not in (None, crop):
                raise DataError(
                    f"transform: resize/crop are fixed by protocol {self.protocol} "
                    f"({resize}, {crop}); use protocol: custom for other sizes"
                )
            self.resize, self.crop = resize, crop
        if self.test_crops is None:
            self.test_crops = 3 if self.protocol == "B" else 1
        if self.test_crops not in (1, 3):
            raise DataError(f"transform.test_crops: must be 1 or 3, got {self.test_crops!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise DataError("transform.mean/std: need three values each, std > 0")
        if self.max_side is not None and (
            isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or self.max_side < 1
        ):
            raise DataError(f"transform.max_side: must be a positive integer or null, got {self.max_side!r}")
        self.mean, self.std = [float(v) for v in self.mean], [float(v) for v in self.std]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransformSpec:
        return _from_dict(cls, d, "transform")

    def plan(self, modality: str, split: str) -> Plan:
        """The concrete resize/crop recipe for one modality and split."""
        train = split == "train"
        mean, std = tuple(self.mean), tuple(self.std)
        flip = self.flip and train
        if self.max_side is not None:
            return dataclasses.replace(self._plan(modality, split, train, mean, std, flip), max_side=self.max_side)
        return self._plan(modality, split, train, mean, std, flip)

    def _plan(self, modality: str, split: str, train: bool, mean: tuple, std: tuple, flip: bool) -> Plan:
        if self.protocol == "B":
            if train:
                return Plan(resize=None, scales=(256, 320), crop=224, random_crop=True, flip=flip, mean=mean, std=std)
            if modality == "video" and self.test_crops == 3:
                return Plan(resize=(256,), crop=256, crops=3, mean=mean, std=std)
            return Plan(resize=(256,), crop=224, crops=1, mean=mean, std=std)
        size = None if self.resize is None else tuple([self.resize] if isinstance(self.resize, int) else self.resize)
        crops = self.test_crops if (modality == "video" and not train) else 1
        return Plan(
            resize=size,
            crop=self.crop,
            crops=crops or 1,
            random_crop=train and self.crop is not None,
            flip=flip,
            mean=mean,
            std=std,
        )


@dataclass
class SourceSpec:
    """One dataset source: its key, modality, on-disk format and how to sample/transform it."""

    key: str
    modality: str
    format: str
    root: str
    train: str | None = None
    test: str | None = None
    clip: ClipSpec = field(default_factory=ClipSpec)
    transform: TransformSpec = field(default_factory=TransformSpec)
    classes: list[str] | str | None = None  # label map: a list or a JSON/text file; None: discovered
    skip_missing: bool = False  # list formats: drop entries whose file is missing instead of failing
    train_root: str | None = None  # per-split data folders (mmaction2's data_prefix); default: root
    test_root: str | None = None
    filename_tmpl: str = "img_{:05d}.jpg"  # mmaction_rawframes: frame file names (mmaction2's default)
    start_index: int = 1  # mmaction_rawframes: number of the first frame file

    def __post_init__(self) -> None:
        if isinstance(self.clip, dict):
            self.clip = ClipSpec.from_dict(self.clip)
        if isinstance(self.transform, dict):
            self.transform = TransformSpec.from_dict(self.transform)
        if not isinstance(self.key, str) or not self.key:
            raise DataError(f"source key must be a non-empty string, got {self.key!r}")
        if self.modality not in MODALITIES:
            raise DataError(f"source {self.key!r}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.format not in FORMATS:
            raise DataError(f"source {self.key!r}: format must be one of {FORMATS}, got {self.format!r}")
        self.root = str(self.root)
        self.train_root = None if self.train_root is None else str(self.train_root)
        self.test_root = None if self.test_root is None else str(self.test_root)
        if self.format == "mmaction_rawframes" and self.modality != "video":
            raise DataError(f"source {self.key!r}: format mmaction_rawframes is a video format (modality: video)")
        try:
            self.filename_tmpl.format(self.start_index)
        except (IndexError, KeyError, ValueError) as exc:
            raise DataError(
                f"source {self.key!r}: filename_tmpl {self.filename_tmpl!r} does not format a frame number ({exc})"
            ) from exc

    def root_for(self, split: str) -> str:
        """The data folder (or archive) of one split: ``train_root`` / ``test_root``, else ``root``."""
        specific = self.train_root if split == "train" else self.test_root
        return specific if specific is not None else self.root

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceSpec:
        """Build from a plain (YAML) dict; unknown keys, wrong types and missing keys are rejected."""
        where = f"source {d.get('key')!r}" if isinstance(d, dict) else "source"
        return _from_dict(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def split_ref(self, split: str) -> str:
        ref = self.train if split == "train" else self.test
        if ref is None:
            if self.format == "folder":
                # a per-split root holds the class folders itself
                own_root = self.train_root if split == "train" else self.test_root
                return "." if own_root is not None else split
            raise DataError(f"source {self.key!r}: no {split!r} file given (set '{split}:' in the source)")
        return ref


# --------------------------------------------------------------------------- label maps


def save_label_maps(path: str | Path, maps: dict[str, list[str]]) -> None:
    """Write ``{source key: [class names]}`` as JSON (list index = label)."""
    Path(path).write_text(json.dumps({k: list(v) for k, v in maps.items()}, indent=2))


def load_label_maps(path: str | Path) -> dict[str, list[str]]:
    """``{source key: [class names]}`` from a label-map file or a run's ``labels.json`` (or its directory).

    A run writes ``{key: {"modality": ..., "classes": [...]}}``; :func:`save_label_maps` writes
    ``{key: [...]}``. Both read the same.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "labels.json"
    if not path.is_file():
        raise DataError(f"{path}: label map not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        data = {k: v.get("classes") if isinstance(v, dict) else v for k, v in data.items()}
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataError(f"{path}: expected {{source key: [class names]}} or a run's {{key: {{classes: [...]}}}}")
    return {k: [str(c) for c in v] for k, v in data.items()}


def _read_classes(ref: list[str] | str) -> list[str]:
    """A label map given inline, as a JSON list/dict file, or as a text file (one class a line)."""
    if isinstance(ref, list):
        return [str(c) for c in ref]
    path = Path(ref)
    if not path.is_file():
        raise DataError(f"{path}: classes file not found")
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of class names")
        return [str(c) for c in data]
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- indexing


@dataclass
class Entry:
    """One example on disk."""

    path: str  # file path, or "archive::member", or a frame folder (raw frames)
    label: int
    window: tuple[float, float] | None = None  # seconds, for untrimmed Kinetics videos
    frames: int | None = None  # raw frames: the listed total_frames


def _extensions(modality: str) -> tuple[str, ...]:
    return IMAGE_EXTENSIONS if modality == "image" else VIDEO_EXTENSIONS


def _resolve_list_file(spec: SourceSpec, ref: str, split: str) -> Path:
    """A list/CSV file: absolute, else relative to the split's root, ``root``, then the working directory.

    Roots first (the usual layout: annotations beside the data, or beside the split folders
    as mmaction2 ships them); the working directory last, for lists kept apart from the data,
    e.g. lists written next to a read-only archive.
    """
    path = Path(ref)
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = []
        for root in dict.fromkeys((Path(spec.root_for(split)), Path(spec.root))):
            candidates.append((root if root.is_dir() else root.parent) / path)
        candidates.append(Path.cwd() / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise DataError(f"source {spec.key!r}: {spec.format} file {ref!r} not found (looked for {tried})")


def _folder_listing(spec: SourceSpec, split: str) -> list[tuple[str, str]]:
    """(path, class name) pairs of a class-folder split."""
    sub = spec.split_ref(split)
    exts = _extensions(spec.modality)
    root = spec.root_for(split)
    if archive_mod.is_archive(root):
        arch = archive_mod.open_archive(root)
        prefix = "" if sub in (".", "") else sub.strip("/") + "/"
        pairs = []
        for name in arch.names():
            if name.startswith(prefix) and name.lower().endswith(exts):
                parts = name[len(prefix) :].split("/")
                if len(parts) == 2:
                    pairs.append((f"{root}{archive_mod.SEP}{name}", parts[0]))
        if not pairs:
            raise DataError(f"{root}: no {spec.modality} files under '{prefix}<class>/' in the archive")
        return sorted(pairs)
    base = Path(root) / sub
    if not base.is_dir():
        raise DataError(f"source {spec.key!r}: folder not found: {base}")
    pairs = []
    for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.is_file() and f.name.lower().endswith(exts):
                pairs.append((str(f), class_dir.name))
    if not pairs:
        raise DataError(f"source {spec.key!r}: no {spec.modality} files in {base}/<class>/")
    return pairs


def _list_rows(spec: SourceSpec, split: str) -> list[tuple[str, str, str]]:
    """(path, label text, 'file:line') of a `path label` list file."""
    list_file = _resolve_list_file(spec, spec.split_ref(split), split)
    rows = []
    base = spec.root_for(split)
    in_archive = archive_mod.is_archive(base)
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(f"{list_file}:{number}: expected 'path label', got {text!r}")
        rel, label = parts
        path = f"{base}{archive_mod.SEP}{rel}" if in_archive else str(Path(base) / rel)
        rows.append((path, label, f"{list_file}:{number}"))
    if not rows:
        raise DataError(f"{list_file}: no entries")
    return rows


def _rawframe_rows(spec: SourceSpec, split: str) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """mmaction2 raw-frame lines ``frame_dir total_frames label``: rows and frame counts per folder."""
    rows, counts = [], {}
    for path, label, where in _list_rows(spec, split):
        parts = path.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
            raise DataError(f"{where}: expected 'frame_dir total_frames label' with total_frames >= 1")
        # _list_rows joined the root to 'frame_dir total_frames'; split the count back off
        folder = parts[0]
        counts[folder] = int(parts[1])
        rows.append((folder, label, where))
    return rows, counts


KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def _kinetics_rows(spec: SourceSpec, split: str) -> list[tuple[dict[str, str], str]]:
    csv_file = _resolve_list_file(spec, spec.split_ref(split), split)
    with open(csv_file, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{csv_file}: empty CSV")
        header = [h.strip() for h in header]
        missing = [c for c in KINETICS_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{csv_file}:1: header lacks column(s) {missing}; need {list(KINETICS_COLUMNS)}[,split]")
        rows = []
        for number, values in enumerate(reader, start=2):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(
                    f"{csv_file}:{number}: expected {len(header)} columns ({','.join(header)}), got {len(values)}"
                )
            rows.append((dict(zip(header, (v.strip() for v in values))), f"{csv_file}:{number}"))
    if "split" in header:
        wanted = {"train"} if split == "train" else TEST_SPLIT_NAMES
        rows = [(r, w) for r, w in rows if r["split"].lower() in wanted or not r["split"]]
    if not rows:
        raise DataError(f"{csv_file}: no rows for split {split!r}")
    return rows


def _video_index(root: Path) -> dict[str, list[Path]]:
    """File stem -> paths of every video file under root (one walk instead of a probe per row)."""
    index: dict[str, list[Path]] = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(VIDEO_EXTENSIONS):
                index.setdefault(os.path.splitext(name)[0], []).append(Path(dirpath) / name)
    return index


def _kinetics_entries(spec: SourceSpec, split: str, classes: list[str] | None) -> tuple[list[Entry], list[str]]:
    rows = _kinetics_rows(spec, split)
    names = classes if classes is not None else sorted({r["label"] for r, _ in rows})
    lookup = {n: i for i, n in enumerate(names)}
    root = spec.root_for(split)
    files = _video_index(Path(root))
    entries, missing = [], []
    for row, where in rows:
        label = row["label"]
        if label not in lookup:
            raise DataError(f"{where}: label {label!r} is not in the label map ({len(names)} classes)")
        try:
            start, end = float(row["time_start"]), float(row["time_end"])
        except ValueError as exc:
            raise DataError(f"{where}: time_start/time_end must be numbers ({exc})") from exc
        vid = row["youtube_id"]
        trimmed = f"{vid}_{int(start):06d}_{int(end):06d}"
        window = None
        candidates = files.get(trimmed)
        if not candidates:
            candidates = files.get(vid)
            window = (start, end) if candidates else None
        if not candidates:
            missing.append(f"{where}: no video {trimmed}.* or {vid}.* under {root}")
            continue
        pick = next((c for c in candidates if c.parent.name in (label, label.replace(" ", "_"))), candidates[0])
        entries.append(Entry(str(pick), lookup[label], window))
    _missing_policy(spec, split, len(rows), missing)
    if not entries:
        raise DataError(f"source {spec.key!r}: none of the CSV rows has a video under {root}")
    return entries, names, missing


def _missing_policy(spec: SourceSpec, split: str, listed: int, missing: list[str]) -> None:
    """Fail naming the first missing files unless the source drops them (``skip_missing``)."""
    if missing and not spec.skip_missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise DataError(
            f"source {spec.key!r} {split}: {len(missing)} of {listed} listed files missing: "
            + "; ".join(missing[:3])
            + more
            + " — set skip_missing: true to drop them"
        )


def _present(path: str, archive_names: set[str] | None) -> bool:
    if archive_names is not None:
        return path.split(archive_mod.SEP, 1)[1] in archive_names
    return os.path.exists(path)


def _drop_missing(
    spec: SourceSpec,
    split: str,
    rows: list[tuple[str, str, str]],
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Rows whose file (or frame folder) exists, and ``'file:line: path'`` of the others, checked once."""
    root = spec.root_for(split)
    names = set(archive_mod.open_archive(root).names()) if archive_mod.is_archive(root) else None
    kept, missing = [], []
    for row in rows:
        (kept if _present(row[0], names) else missing).append(row)
    lost = [f"{where}: {path}" for path, _, where in missing]
    _missing_policy(spec, split, len(rows), lost)
    if not kept:
        raise DataError(f"source {spec.key!r} {split}: none of the {len(rows)} listed files exists under {root}")
    return kept, lost


def _labelled(rows: Sequence[tuple[str, str, str]], classes: list[str] | None) -> tuple[list[Entry], list[str]]:
    """Map label texts (names or indices) onto a label map, discovering it if not given."""
    if classes is None:
        texts = {label for _, label, _ in rows}
        if all(t.isdigit() for t in texts):
            classes = [str(i) for i in range(max(int(t) for t in texts) + 1)]
        else:
            classes = sorted(texts)
    lookup = {n: i for i, n in enumerate(classes)}
    entries = []
    for path, label, where in rows:
        if label in lookup:
            index = lookup[label]
        elif label.lstrip("-").isdigit():
            index = int(label)
            if not 0 <= index < len(classes):
                raise DataError(f"{where}: label {index} is outside the label map (0..{len(classes) - 1})")
        else:
            raise DataError(f"{where}: label {label!r} is not in the label map ({len(classes)} classes)")
        entries.append(Entry(path, index))
    return entries, classes


def discover_classes(spec: SourceSpec) -> list[str]:
    """The label map a source implies: given, else from its training split."""
    if spec.classes is not None:
        return _read_classes(spec.classes)
    split = "train" if (spec.format == "folder" or spec.train is not None) else "test"
    return index_source(spec, split, None)[1]


def index_source(spec: SourceSpec, split: str, classes: list[str] | None) -> tuple[list[Entry], list[str]]:
    """Every example of one split, labelled against ``classes`` (discovered when None)."""
    entries, names, _ = index_source_missing(spec, split, classes)
    return entries, names


def index_source_missing(
    spec: SourceSpec,
    split: str,
    classes: list[str] | None,
) -> tuple[list[Entry], list[str], list[str]]:
    """``index_source`` plus the ``'file:line: path'`` of listed files dropped as missing."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if classes is None and spec.classes is not None:
        classes = _read_classes(spec.classes)
    if classes is None and split == "test" and (spec.format == "folder" or spec.train is not None):
        classes = discover_classes(spec)  # the test split uses the training split's label map
    if spec.format == "folder":
        rows = [(p, c, p) for p, c in _folder_listing(spec, split)]
        if classes is None:
            classes = sorted({c for _, c, _ in rows})
        lookup = {n: i for i, n in enumerate(classes)}
        bad = [(p, c) for p, c, _ in rows if c not in lookup]
        if bad:
            raise DataError(f"{bad[0][0]}: class folder {bad[0][1]!r} is not in the label map ({len(classes)} classes)")
        return [Entry(p, lookup[c]) for p, c, _ in rows], classes, []
    if spec.format == "kinetics_csv":
        return _kinetics_entries(spec, split, classes)
    counts: dict[str, int] = {}
    if spec.format == "mmaction_rawframes":
        rows, counts = _rawframe_rows(spec, split)
    else:
        rows = _list_rows(spec, split)
    if spec.format.startswith("mmaction"):
        bad = next(((p, label, w) for p, label, w in rows if not label.lstrip("-").isdigit()), None)
        if bad:
            raise DataError(f"{bad[2]}: mmaction label must be an integer, got {bad[1]!r}")
    if classes is None:  # the label map comes from every listed row, present or not
        classes = _labelled(rows, None)[1]
    rows, missing = _drop_missing(spec, split, rows)
    entries, classes = _labelled(rows, classes)
    for entry in entries:
        entry.frames = counts.get(entry.path)
    return entries, classes, missing


# --------------------------------------------------------------------------- dataset


class SourceDataset(Dataset):
    """Examples of one source and split as ``{"input", "label", "source", "index"}`` dicts."""

    def __init__(self, spec: SourceSpec, split: str, classes: Sequence[str] | None = None) -> None:
        self.spec = spec
        self.split = split
        entries, names, missing = index_source_missing(spec, split, list(classes) if classes is not None else None)
        self.classes: list[str] = list(names)
        self.entries = entries
        self.missing: list[str] = missing  # 'file:line: path' of listed files dropped (skip_missing)
        self.files: list[str] = [e.path for e in entries]
        self.labels: list[int] = [e.label for e in entries]
        self.plan = spec.transform.plan(spec.modality, split)
        self._info: dict[int, VideoInfo] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"SourceDataset(key={self.spec.key!r}, split={self.split!r}, examples={len(self)}, classes={len(self.classes)})"

    def _rng(self) -> random.Random:
        # drawn from torch's generator so torch.manual_seed and DataLoader worker seeding apply
        return random.Random(int(torch.randint(0, 2**62, (1,)).item()))

    def read_image(self, index: int):
        path = self.entries[index].path
        if archive_mod.SEP in path:
            archive, member = path.split(archive_mod.SEP, 1)
            return load_image(archive_mod.open_archive(archive).read(member), name=path)
        return load_image(path)

    def video_info(self, index: int) -> VideoInfo:
        if index not in self._info:
            entry = self.entries[index]
            if entry.frames is not None:  # raw frames: the list gives the count, nothing to probe
                self._info[index] = VideoInfo(entry.frames, RAWFRAME_FPS, entry.frames / RAWFRAME_FPS, 0, 0)
            else:
                self._info[index] = probe_video(entry.path)
        return self._info[index]

    def read_rawframes(self, index: int, wanted: Sequence[int]) -> np.ndarray:
        """The frame files of native indices ``wanted`` (0-based) of a raw-frame folder, ``(T, H, W, 3)``."""
        folder = Path(self.entries[index].path)
        names = [self.spec.filename_tmpl.format(i + self.spec.start_index) for i in wanted]
        frames = [image_array(load_image(folder / name)) for name in names]
        if len({f.shape for f in frames}) != 1:
            raise DataError(f"{folder}: frame files differ in size")
        return np.stack(frames)

    def _window(self, index: int, info: VideoInfo) -> tuple[int, int]:
        """(first native frame, frame count) of the part of the video this example uses."""
        window = self.entries[index].window
        if window is None:
            return 0, info.num_frames
        first = min(int(round(window[0] * info.fps)), info.num_frames - 1)
        last = min(int(round(window[1] * info.fps)), info.num_frames)
        return first, max(last - first, 1)

    def clip_indices(
        self, index: int, rng: random.Random | None = None, info: VideoInfo | None = None
    ) -> list[list[int]]:
        """Native frame indices of the clip(s) this example reads (1 in training, num_clips in test)."""
        info = info or self.video_info(index)
        offset, count = self._window(index, info)
        c = self.spec.clip
        step = sampling.frame_step(c.stride, info.fps, c.fps)
        if self.split == "train":
            clips = [sampling.random_clip(count, c.frames, step, rng or self._rng(), c.loop)]
        else:
            clips = sampling.uniform_clips(count, c.frames, step, c.num_clips, c.loop)
        return [[offset + i for i in clip] for clip in clips]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for {self!r}")
        rng = self._rng()
        if self.spec.modality == "image":
            views = apply_plan(image_array(self.read_image(index)), self.plan, rng)
            x = views[0][0]  # (3, H, W)
        else:
            clips: list[list[int]] = []

            def choose(info: VideoInfo) -> list[int]:
                self._info[index] = info
                clips.extend(self.clip_indices(index, rng, info))
                return sorted(set(sampling.flatten(clips)))

            if self.entries[index].frames is not None:  # raw frames: one image file per index
                wanted = choose(self.video_info(index))
                frames = self.read_rawframes(index, wanted)
            else:  # a video seen for the first time is probed and read through one open
                _, wanted, frames = read_clip(self.entries[index].path, choose, self._info.get(index), stacked=False)
            stacked = clip_views(dict(zip(wanted, frames)), clips, self.plan, rng)  # (V, 3, T, H, W)
            x = stacked[0] if self.split == "train" else stacked
        return {"input": x, "label": self.labels[index], "source": self.spec.key, "index": index}


def build_dataset(spec: SourceSpec | dict[str, Any], split: str, classes: Sequence[str] | None = None) -> SourceDataset:
    """The dataset of one source and split; ``classes`` pins the label map (evaluation reuses the run's)."""
    if isinstance(spec, dict):
        spec = SourceSpec.from_dict(spec)
    return SourceDataset(spec, split, classes)
