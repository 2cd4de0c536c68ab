"""Readers of the video benchmarks' own split files, read exactly as distributed (one table entry each).

- **UCF101** (``ucf101``): ``splits`` is the folder with ``classInd.txt`` (``1 ApplyEyeMakeup``,
  1-indexed), ``trainlist0N.txt`` (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``, 1-indexed
  labels) and ``testlist0N.txt`` (paths only: the class is the folder), CRLF line ends.
- **HMDB51** (``hmdb51``): ``splits`` is the folder of ``<class>_test_split<N>.txt`` files, one per
  class and split, each line ``<video>.avi <0|1|2>`` (1 train, 2 test, 0 unused); videos are
  ``root/<class>/<video>.avi``; classes are the class names, sorted (torchvision's order).
- **Something-Something V2** (``ssv2``): ``labels`` is ``labels.json`` (template -> id string),
  ``train``/``test`` the annotation JSONs (``[{"id", "template", "label", "placeholders"}, ...]``),
  videos ``root/<id>.webm`` (any video suffix, e.g. after ``data prepare``). The class is the
  template with its brackets removed, as the official loaders do. The official ``test.json``
  lists ids only: it cannot be trained or evaluated on and is refused, naming the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unidual.data.decode import VIDEO_EXTENSIONS
from unidual.data.errors import DataError
from unidual.data.listing import Index, Row, index_rows, resolve_list_file
from unidual.data.textfile import read_json, read_lines

if TYPE_CHECKING:
    from unidual.data.specs import SourceSpec


def _splits_folder(spec: SourceSpec) -> Path:
    folder = Path(str(spec.splits))
    if not folder.is_dir():
        raise DataError(f"source {spec.key!r}: splits folder not found: {folder}")
    return folder


def _split_file(folder: Path, name: str, what: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise DataError(f"{path}: {what} split file not found")
    return path


# --------------------------------------------------------------------------- UCF101


def _ucf101_classes(folder: Path) -> list[str]:
    """classInd.txt: ``index ClassName`` lines, indices 1..N each once."""
    path = _split_file(folder, "classInd.txt", "UCF101 class index (classInd.txt)")
    names: dict[int, str] = {}
    for number, text in read_lines(path):
        parts = text.split(None, 1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}:{number}: expected 'index ClassName', got {text!r}")
        index = int(parts[0])
        if index in names:
            raise DataError(f"{path}:{number}: class index {index} given twice")
        names[index] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise DataError(f"{path}: class indices must run 1..{len(names)} (1-indexed, no gaps)")
    return [names[i] for i in range(1, len(names) + 1)]


def read_ucf101(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """UCF101's ``trainlist0N.txt`` (1-indexed labels) / ``testlist0N.txt`` (class = folder) over ``root``."""
    folder = _splits_folder(spec)
    names = _ucf101_classes(folder)
    known = set(names)
    list_file = _split_file(folder, f"{split}list{spec.split:02d}.txt", f"UCF101 split {spec.split}")
    root = Path(spec.root_for(split))
    rows: list[Row] = []
    for number, text in read_lines(list_file):
        where = f"{list_file}:{number}"
        parts = text.split()
        if len(parts) == 2 and parts[1].isdigit():  # a train line: path and 1-indexed label
            label = int(parts[1])
            if not 1 <= label <= len(names):
                raise DataError(f"{where}: label {label} is outside classInd.txt's 1..{len(names)}")
            name = names[label - 1]
        elif len(parts) == 1 and split == "test" and "/" in parts[0]:  # a test line: the class is the folder
            name = parts[0].split("/", 1)[0]
            if name not in known:
                raise DataError(f"{where}: class folder {name!r} is not in classInd.txt")
        else:
            shape = "ClassName/video.avi label" if split == "train" else "ClassName/video.avi"
            raise DataError(f"{where}: expected '{shape}', got {text!r}")
        rows.append((str(root / parts[0]), name, where))
    if not rows:
        raise DataError(f"{list_file}: no entries")
    return index_rows(spec, split, rows, classes if classes is not None else names)


# --------------------------------------------------------------------------- HMDB51

HMDB51_TAGS = {"train": "1", "test": "2"}


def read_hmdb51(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """HMDB51's ``<class>_test_split<N>.txt`` files: the videos tagged 1 (train) or 2 (test) in split N."""
    folder = _splits_folder(spec)
    pattern = re.compile(r"(.+)_test_split(\d+)\.txt")
    found = [m for m in (pattern.fullmatch(p.name) for p in sorted(folder.iterdir())) if m]
    names = sorted({m.group(1) for m in found})
    if not names:
        raise DataError(f"{folder}: no '<class>_test_split<N>.txt' files (HMDB51's split folder)")
    files = [_split_file(folder, f"{name}_test_split{spec.split}.txt", f"HMDB51 split {spec.split}") for name in names]
    root = Path(spec.root_for(split))
    rows: list[Row] = []
    for name, list_file in zip(names, files):
        for number, text in read_lines(list_file):
            parts = text.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(f"{list_file}:{number}: expected '<video>.avi 0|1|2', got {text!r}")
            if parts[1] == HMDB51_TAGS[split]:
                rows.append((str(root / name / parts[0]), name, f"{list_file}:{number}"))
    if not rows:
        raise DataError(f"{folder}: no video is tagged {HMDB51_TAGS[split]} ({split}) in split {spec.split}")
    return index_rows(spec, split, rows, classes if classes is not None else names)


# --------------------------------------------------------------------------- Something-Something V2


def _ssv2_classes(path: Path) -> list[str]:
    """labels.json: ``{template: "id"}``, ids 0..N-1 each once; the class names in id order."""
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a JSON object of template -> class id (SSv2's labels.json)")
    by_id: dict[int, str] = {}
    for name, value in data.items():
        text = str(value)
        if not text.isdigit() or int(text) in by_id:
            raise DataError(f"{path}: {name!r}: class id {value!r} is not a number used once")
        by_id[int(text)] = name
    if sorted(by_id) != list(range(len(by_id))):
        raise DataError(f"{path}: class ids must run 0..{len(by_id) - 1} without gaps")
    return [by_id[i] for i in range(len(by_id))]


def _video_files(root: Path) -> dict[str, str]:
    """Stem -> file name of the videos directly in ``root``; ``.webm`` (as distributed) wins over others."""
    found: dict[str, str] = {}
    if root.is_dir():
        with os.scandir(root) as entries:
            for entry in entries:
                stem, suffix = os.path.splitext(entry.name)
                if suffix.lower() in VIDEO_EXTENSIONS and (stem not in found or suffix.lower() == ".webm"):
                    found[stem] = entry.name
    return found


def _ssv2_item(item: Any, where: str) -> tuple[str, str]:
    """(video id, template without brackets) of one annotation entry."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), (str, int)):
        raise DataError(f"{where}: expected an object with an 'id'")
    template = item.get("template")
    if template is None:
        raise DataError(
            f"{where} (id {item['id']!r}) has no 'template': an unlabelled list (SSv2's test.json) cannot be "
            "trained or evaluated on; use validation.json as 'test:', and 'unidual predict' for unlabelled videos"
        )
    if not isinstance(template, str):
        raise DataError(f"{where}: 'template' must be a string, got {template!r}")
    return str(item["id"]), template.replace("[", "").replace("]", "")


def read_ssv2(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """SSv2 annotation JSON entries -> ``root/<id>.webm`` labelled by template (brackets removed)."""
    labels = Path(str(spec.labels))
    if not labels.is_file():
        raise DataError(f"source {spec.key!r}: labels file not found: {labels}")
    names = _ssv2_classes(labels)
    known = set(names)
    annotations = resolve_list_file(spec, spec.split_ref(split), split, beside=[labels.parent])
    items = read_json(annotations)
    if not isinstance(items, list) or not items:
        raise DataError(f"{annotations}: expected a non-empty JSON list of annotation objects")
    root = Path(spec.root_for(split))
    files = _video_files(root)
    rows: list[Row] = []
    for number, item in enumerate(items, start=1):
        where = f"{annotations}: entry {number}"
        video, name = _ssv2_item(item, where)
        if name not in known:
            raise DataError(f"{where} (id {video!r}): template {name!r} is not in {labels}")
        rows.append((str(root / files.get(video, f"{video}.webm")), name, where))
    return index_rows(spec, split, rows, classes if classes is not None else names)
