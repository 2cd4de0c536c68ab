"""What every format reader shares: the index entry, list-file lookup, missing files, label mapping.

A reader (:mod:`unidual.data.readers`, :mod:`unidual.data.splitfiles`) turns its files into
*rows* ``(path, label text, 'file:line')`` and hands them to :func:`index_rows`, which checks
each listed file once, applies the ``skip_missing`` policy and maps the label texts onto the
label map -- so every list format reports a bad line and a missing file the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from unidual.data import archive as archive_mod
from unidual.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from unidual.data.errors import DataError, MissingFilesError
from unidual.data.textfile import read_lines

if TYPE_CHECKING:
    from unidual.data.specs import SourceSpec

#: ``(path, label text, 'file:line')``: one listed example before its label is mapped.
Row = tuple[str, str, str]


@dataclass
class Entry:
    """One example on disk."""

    path: str  # file path, or "archive::member", or a frame folder (raw frames)
    label: int
    window: tuple[float, float] | None = None  # seconds, for untrimmed Kinetics videos
    frames: int | None = None  # raw frames: the listed total_frames


class Index(NamedTuple):
    """One split of a source: its examples, its label map and the listed files dropped as missing."""

    entries: list[Entry]
    classes: list[str]
    missing: list[str]  # 'file:line: path' of listed files dropped (skip_missing)


def extensions(modality: str) -> tuple[str, ...]:
    return IMAGE_EXTENSIONS if modality == "image" else VIDEO_EXTENSIONS


def resolve_list_file(spec: SourceSpec, ref: str, split: str, beside: Iterable[Path] = ()) -> Path:
    """A list/CSV file: absolute, else in ``beside`` folders, the split's root, ``root``, then the working directory.

    Roots first (the usual layout: annotations beside the data, or beside the split folders
    as mmaction2 ships them); the working directory last, for lists kept apart from the data,
    e.g. lists written next to a read-only archive.
    """
    path = Path(ref)
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path(folder) / path for folder in beside]
        for root in dict.fromkeys((Path(spec.root_for(split)), Path(spec.root))):
            candidates.append((root if root.is_dir() else root.parent) / path)
        candidates.append(Path.cwd() / path)
    candidates = list(dict.fromkeys(candidates))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise DataError(f"source {spec.key!r}: {spec.format} file {ref!r} not found (looked for {tried})")


def list_rows(spec: SourceSpec, split: str) -> list[Row]:
    """Rows of a ``path label`` list file (the split's ``train:`` / ``test:``), paths joined to the split's root."""
    list_file = resolve_list_file(spec, spec.split_ref(split), split)
    rows = []
    for number, text in read_lines(list_file):
        parts = text.rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(f"{list_file}:{number}: expected 'path label', got {text!r}")
        rows.append((join_root(spec, split, parts[0]), parts[1], f"{list_file}:{number}"))
    if not rows:
        raise DataError(f"{list_file}: no entries")
    return rows


def join_root(spec: SourceSpec, split: str, rel: str) -> str:
    """A listed path inside the split's root (a folder, or ``archive::member`` for an archive)."""
    base = spec.root_for(split)
    return f"{base}{archive_mod.SEP}{rel}" if archive_mod.is_archive(base) else str(Path(base) / rel)


def missing_policy(spec: SourceSpec, split: str, listed: int, missing: list[str]) -> None:
    """Fail naming the first missing files unless the source drops them (``skip_missing``)."""
    if missing and not spec.skip_missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise MissingFilesError(
            f"source {spec.key!r} {split}: {len(missing)} of {listed} listed files missing: "
            + "; ".join(missing[:3])
            + more
            + " — set skip_missing: true to drop them",
            missing,
        )


def _present(path: str, archive_names: set[str] | None) -> bool:
    if archive_names is not None:
        return path.split(archive_mod.SEP, 1)[1] in archive_names
    return os.path.exists(path)


def drop_missing(spec: SourceSpec, split: str, rows: list[Row]) -> tuple[list[Row], list[str]]:
    """Rows whose file (or frame folder) exists, and ``'file:line: path'`` of the others, checked once."""
    root = spec.root_for(split)
    names = set(archive_mod.open_archive(root).names()) if archive_mod.is_archive(root) else None
    kept: list[Row] = []
    missing: list[Row] = []
    for row in rows:
        (kept if _present(row[0], names) else missing).append(row)
    lost = [f"{where}: {path}" for path, _, where in missing]
    missing_policy(spec, split, len(rows), lost)
    if not kept:
        raise MissingFilesError(
            f"source {spec.key!r} {split}: none of the {len(rows)} listed files exists under {root}", lost
        )
    return kept, lost


def labelled(rows: Sequence[Row], classes: list[str] | None) -> tuple[list[Entry], list[str]]:
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


def index_rows(spec: SourceSpec, split: str, rows: list[Row], classes: list[str] | None) -> Index:
    """Rows -> an index: the label map from every listed row (present or not), missing files dropped or refused."""
    if classes is None:
        classes = labelled(rows, None)[1]
    kept, missing = drop_missing(spec, split, rows)
    entries, classes = labelled(kept, classes)
    return Index(entries, classes, missing)


def integer_labels(rows: Sequence[Row], what: str) -> None:
    """Refuse a row whose label is not an integer (formats whose labels are class indices)."""
    bad = next(((label, where) for _, label, where in rows if not label.lstrip("-").isdigit()), None)
    if bad:
        raise DataError(f"{bad[1]}: {what} label must be an integer, got {bad[0]!r}")
