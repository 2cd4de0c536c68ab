"""A ``sources.yaml``: the one file of source specs that ``train``, ``data check`` and ``eval --data`` read.

The file is a list of source mappings, or a mapping with a ``sources:`` list (so a
train config's own file can be pointed at too). Relative paths inside it (``root``,
``train_root``, ``test_root``, a ``classes`` file, a benchmark's ``splits`` folder or
``labels`` file) are taken relative to the YAML file's folder when they exist there, else
left to the working directory -- the same rule as list files beside their data -- so a
dataset folder with its ``sources.yaml`` can be moved as one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unidual.data.errors import DataError
from unidual.yamlconfig import ConfigError, load_yaml_file

PATH_KEYS = ("root", "train_root", "test_root", "classes", "splits", "labels")


def _anchor(value: Any, folder: Path) -> Any:
    """A relative path made absolute: beside ``folder`` if it exists there, else in the working
    directory if it exists there (stored absolute, so a run config works from any folder), else as written."""
    if not isinstance(value, str) or Path(value).is_absolute():
        return value
    beside = folder / value
    if beside.exists():
        return str(beside)
    return os.path.abspath(value) if os.path.exists(value) else value


def read_source_file(path: str | Path) -> list[dict[str, Any]]:
    """The source mappings of a YAML file, relative paths anchored at the file's folder."""
    path = Path(path)
    if path.is_dir() and (path / "sources.yaml").is_file():
        path = path / "sources.yaml"
    if not path.is_file():
        raise DataError(f"{path}: sources file not found")
    try:
        data = load_yaml_file(path)
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    items = data.get("sources") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items or not all(isinstance(d, dict) for d in items):
        raise DataError(f"{path}: expected a non-empty list of source mappings (or a 'sources:' list)")
    folder = path.resolve().parent
    return [{k: (_anchor(v, folder) if k in PATH_KEYS else v) for k, v in d.items()} for d in items]


def absolute_paths(source: dict[str, Any], folder: str | Path | None = None) -> dict[str, Any]:
    """A source mapping with its relative paths (:data:`PATH_KEYS`) anchored at ``folder`` (default:
    the working directory) where they exist: what a run stores, so ``eval RUN`` works from anywhere."""
    where = Path(folder).resolve() if folder is not None else Path.cwd()
    return {k: (_anchor(v, where) if k in PATH_KEYS else v) for k, v in source.items()}
