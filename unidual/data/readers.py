"""Readers of the general on-disk formats: class folders, path/label lists, Kinetics CSVs, mmaction2 lists.

One function per format, ``read(spec, split, classes) -> Index``; each is one entry of the
format table (:data:`unidual.data.formats.FORMATS`). ``classes`` is the label map to label
against, or None to discover it from the split.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from unidual.data import archive as archive_mod
from unidual.data.decode import VIDEO_EXTENSIONS
from unidual.data.errors import DataError, MissingFilesError
from unidual.data.listing import (
    Entry,
    Index,
    Row,
    extensions,
    index_rows,
    integer_labels,
    list_rows,
    missing_policy,
    resolve_list_file,
)
from unidual.data.textfile import read_text

if TYPE_CHECKING:
    from unidual.data.specs import SourceSpec

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
TEST_SPLIT_NAMES = {"test", "val", "valid", "validate", "validation"}


# --------------------------------------------------------------------------- folder


def _folder_listing(spec: SourceSpec, split: str) -> list[tuple[str, str]]:
    """(path, class name) pairs of a class-folder split."""
    sub = spec.split_ref(split)
    exts = extensions(spec.modality)
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


def read_folder(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """``root/<split>/<class>/<file>`` (ImageFolder); classes are the folder names, sorted."""
    pairs = _folder_listing(spec, split)
    if classes is None:
        classes = sorted({c for _, c in pairs})
    lookup = {n: i for i, n in enumerate(classes)}
    bad = [(p, c) for p, c in pairs if c not in lookup]
    if bad:
        raise DataError(f"{bad[0][0]}: class folder {bad[0][1]!r} is not in the label map ({len(classes)} classes)")
    return Index([Entry(p, lookup[c]) for p, c in pairs], classes, [])


# --------------------------------------------------------------------------- lists


def read_list(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """``path label`` lines; the label is a class name or an index."""
    return index_rows(spec, split, list_rows(spec, split), classes)


def read_mmaction_list(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """mmaction2's ``relative/path.mp4 label`` lines, integer labels."""
    rows = list_rows(spec, split)
    integer_labels(rows, "mmaction")
    return index_rows(spec, split, rows, classes)


def read_mmaction_rawframes(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """mmaction2's raw-frame lines ``frame_dir total_frames label``; each entry keeps its frame count."""
    rows: list[Row] = []
    counts: dict[str, int] = {}
    for path, label, where in list_rows(spec, split):
        parts = path.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
            raise DataError(f"{where}: expected 'frame_dir total_frames label' with total_frames >= 1")
        # list_rows joined the root to 'frame_dir total_frames'; split the count back off
        folder = parts[0]
        counts[folder] = int(parts[1])
        rows.append((folder, label, where))
    integer_labels(rows, "mmaction")
    index = index_rows(spec, split, rows, classes)
    for entry in index.entries:
        entry.frames = counts.get(entry.path)
    return index


# --------------------------------------------------------------------------- Kinetics CSV


def _kinetics_rows(spec: SourceSpec, split: str) -> list[tuple[dict[str, str], str]]:
    csv_file = resolve_list_file(spec, spec.split_ref(split), split)
    reader = csv.reader(io.StringIO(read_text(csv_file), newline=""))
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


def read_kinetics_csv(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """``label,youtube_id,time_start,time_end[,split]``; trimmed ``{id}_{start}_{end}`` or untrimmed ``{id}`` videos."""
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
    missing_policy(spec, split, len(rows), missing)
    if not entries:
        raise MissingFilesError(f"source {spec.key!r}: none of the CSV rows has a video under {root}", missing)
    return Index(entries, names, missing)
