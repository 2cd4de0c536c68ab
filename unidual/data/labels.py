"""Label maps: the class names of a source (list index = label), read and written in one place.

:func:`read_class_names` is the one reader of a class-name file (a source's ``classes``,
``unidual convert --classes``); :func:`save_label_maps` / :func:`load_label_maps` write and
read ``{source key: [class names]}`` files, including a run's ``labels.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from unidual.data.errors import DataError
from unidual.data.textfile import read_json, read_lines


def read_class_names(ref: list[str] | str | Path) -> list[str]:
    """A label map given inline, as a JSON list file (or ``{key: [...]}`` with one key), or as a text file.

    A text file has one class name a line.
    """
    if isinstance(ref, list):
        return [str(c) for c in ref]
    path = Path(ref)
    if not path.is_file():
        raise DataError(f"{path}: classes file not found")
    if path.suffix.lower() == ".json":
        data = read_json(path)
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of class names")
        return [str(c) for c in data]
    return [text for _, text in read_lines(path, comments=False)]


def save_label_maps(path: str | Path, maps: dict[str, list[str]]) -> None:
    """Write ``{source key: [class names]}`` as JSON (list index = label)."""
    Path(path).write_text(json.dumps({k: list(v) for k, v in maps.items()}, indent=2))


def load_label_maps(path: str | Path) -> dict[str, list[str]]:
    """``{source key: [class names]}`` from a label-map file or a run's labels file (``Run.labels_file``).

    A run writes ``{key: {"modality": ..., "classes": [...]}}``; :func:`save_label_maps` writes
    ``{key: [...]}``. Both read the same.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label map not found")
    data = read_json(path)
    if isinstance(data, dict):
        data = {k: v.get("classes") if isinstance(v, dict) else v for k, v in data.items()}
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataError(f"{path}: expected {{source key: [class names]}} or a run's {{key: {{classes: [...]}}}}")
    return {k: [str(c) for c in v] for k, v in data.items()}
