"""The one summary of listed files dropped as missing (``skip_missing``), written once per run.

Missing files are found when the index is built (``SourceDataset.missing``), so a run
reports them once instead of warning about each of them again in every epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SHOWN = 3  # names quoted in the summary line


def missing_summary(key: str, split: str, missing: list[str], listed: int, written: Path | None) -> str:
    """``source 'k' train: 25 of 74 listed files missing, dropped (a.mp4, ...); full list: FILE``."""
    names = ", ".join(Path(m.rsplit(": ", 1)[-1]).name for m in missing[:SHOWN])
    more = ", ..." if len(missing) > SHOWN else ""
    where = f"; full list: {written}" if written is not None else ""
    return f"source {key!r} {split}: {len(missing)} of {listed} listed files missing, dropped ({names}{more}){where}"


def report_missing(datasets: Mapping[str, Any], split: str, folder: str | Path | None) -> list[str]:
    """Write ``missing_<key>_<split>.txt`` into ``folder`` (if given) per source with dropped files; one line each."""
    lines = []
    for key, ds in datasets.items():
        missing = list(getattr(ds, "missing", None) or [])
        if not missing:
            continue
        written = None
        if folder is not None:
            written = Path(folder) / f"missing_{key}_{split}.txt"
            written.parent.mkdir(parents=True, exist_ok=True)
            written.write_text("".join(f"{m}\n" for m in missing))
        lines.append(missing_summary(key, split, missing, len(ds) + len(missing), written))
    return lines
