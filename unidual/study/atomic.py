"""Study files are replaced whole or not at all: written under a temporary name beside them, then renamed.

A study runs for hours and is meant to be killed and rerun; a table, result or doc written in
place would be left half written by a kill (or a full disk) mid-write. ``os.replace`` within one
folder is atomic, so readers see the old file or the new one. Temporary names start with ``.``
(model ids may not), so they never collide with a run folder; they carry the writer's pid, so two
sessions training different seeds of one study never rename each other's half-written table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unidual.atomicfile import atomic_path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over ``path`` when the block succeeds.

    :func:`unidual.atomicfile.atomic_path` with the suffix kept (``.unidual-<hash>.<pid>.part.csv``),
    so writers that pick a format by suffix (matplotlib, numpy) write the right one, and one name per
    process: two study sessions on disjoint seeds of one ``--out`` write its tables side by side.
    """
    with atomic_path(path, keep_suffix=True) as tmp:
        yield tmp


def write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1) + "\n")
