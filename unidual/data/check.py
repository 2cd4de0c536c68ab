"""``unidual data check``: validate a dataset before training.

Checks every example once -- fast by default (videos: header and packet index, first
frame decoded; see ``unidual.data.filecheck``), every frame with ``deep`` -- in worker
processes, and reports counts per class, frame counts and durations, and every
unreadable or suspicious file with the reason. A plain folder of media files (no class
sub-folders) is checked file by file.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from unidual.data import archive as archive_mod
from unidual.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from unidual.data.errors import DataError, MissingFilesError
from unidual.data.filecheck import inspect
from unidual.data.formats import FORMATS
from unidual.data.sourcefile import read_source_file
from unidual.data.sources import SourceDataset
from unidual.data.specs import SourceSpec
from unidual.data.textfile import read_lines
from unidual.data.workers import media_pool
from unidual.progress import Progress


def specs_for_path(path: str | Path) -> list[SourceSpec]:
    """Guess source specs for a path: sources.yaml, a folder holding one, a class folder, an archive, a CSV or a list."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: path not found")
    if path.is_dir() and (path / "sources.yaml").is_file():
        path = path / "sources.yaml"
    if path.suffix in (".yaml", ".yml"):
        return [SourceSpec.from_dict(d) for d in read_source_file(path)]
    if archive_mod.is_archive(path):
        return [SourceSpec(key=path.name, modality="image", format="folder", root=str(path))]
    if path.suffix == ".csv":
        return [
            SourceSpec(
                key=path.stem,
                modality="video",
                format="kinetics_csv",
                root=str(path.parent),
                train=path.name,
                test=path.name,
            )
        ]
    if path.is_file():
        first = next((text for _, text in read_lines(path, comments=False)), "")
        modality = "video" if first.rsplit(None, 1)[0].lower().endswith(VIDEO_EXTENSIONS) else "image"
        return [
            SourceSpec(
                key=path.stem, modality=modality, format="list", root=str(path.parent), train=path.name, test=path.name
            )
        ]
    return [_folder_spec(path)]


def _folder_spec(path: Path) -> SourceSpec:
    files = [p for p in path.rglob("*") if p.is_file()]
    videos = sum(p.suffix.lower() in VIDEO_EXTENSIONS and p.suffix.lower() != ".gif" for p in files)
    images = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in files)
    modality = "video" if videos > images else "image"
    has_splits = (path / "train").is_dir()
    return SourceSpec(
        key=path.name,
        modality=modality,
        format="folder",
        root=str(path),
        train="train" if has_splits else ".",
        test="test" if (path / "test").is_dir() else None,
    )


def _has_test_split(spec: SourceSpec) -> bool:
    """Whether a test split is declared (or, for class folders, present on disk)."""
    if spec.format != "folder":
        return FORMATS[spec.format].declares(spec, "test")
    if spec.test_root is not None:
        return (Path(spec.test_root) / (spec.test or ".")).is_dir()
    if spec.test is None and spec.train == ".":
        return False
    ref = spec.test or "test"
    if archive_mod.is_archive(spec.root):
        prefix = ref.strip("/") + "/"
        return any(n.startswith(prefix) for n in archive_mod.open_archive(spec.root).names())
    return (Path(spec.root) / ref).is_dir()


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run_checks(
    tasks: Sequence[tuple], workers: int = 1, progress: bool = False, desc: str = "check"
) -> list[dict[str, Any]]:
    """``inspect`` every task, in ``workers`` processes, with a progress bar; results in task order."""
    bar = Progress(total=len(tasks), unit="file", desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    with bar:
        if workers <= 1 or len(tasks) < 2:
            results = []
            for task in tasks:
                results.append(inspect(task))
                bar.update()
            return results
        with media_pool(min(workers, len(tasks))) as pool:
            results = []
            for result in pool.imap(inspect, tasks, chunksize=max(1, min(16, len(tasks) // (workers * 8)))):
                results.append(result)
                bar.update()
            return results


def _raw_options(ds: SourceDataset, index: int) -> dict[str, Any] | None:
    entry = ds.entries[index]
    if entry.frames is None:
        return None
    return {"frames": entry.frames, "filename_tmpl": ds.spec.filename_tmpl, "start_index": ds.spec.start_index}


def summarise(
    results: Sequence[dict[str, Any]], labels: Sequence[str | None], modality: str, clip_frames: int, loop: bool
) -> dict[str, Any]:
    """Counts per class, frame/duration statistics, unreadable and suspicious files of checked results."""
    counts: dict[str, int] = {name: 0 for name in dict.fromkeys(label for label in labels if label is not None)}
    bad, odd = [], []
    frames, durations = [], []
    for result, label in zip(results, labels):
        path = result["path"]
        if result["error"]:
            bad.append({"path": path, "reason": result["error"]})
            continue
        odd += [{"path": path, "reason": note} for note in result["notes"]]
        if modality == "video":
            n = result["frames"]
            frames.append(float(n))
            if result.get("duration") is not None:
                durations.append(result["duration"])
            if n < clip_frames:
                odd.append(
                    {
                        "path": path,
                        "reason": f"{n} frames, shorter than a {clip_frames}-frame clip (looped)"
                        if loop
                        else f"{n} frames, padded to {clip_frames}",
                    }
                )
            fps = result.get("fps")
            if fps is not None and not 1 <= fps <= 240:
                odd.append({"path": path, "reason": f"unusual frame rate {fps:.2f}"})
        if label is not None:
            counts[label] += 1
    report: dict[str, Any] = {
        "checked": len(results),
        "readable": len(results) - len(bad),
        "classes": counts,
        "unreadable": bad,
        "suspicious": odd,
    }
    if modality == "video":
        report["frames"] = _summary(frames)
        report["duration_s"] = _summary(durations)
    return report


def check_split(
    ds: SourceDataset, limit: int | None = None, *, deep: bool = False, workers: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Check every example of one split (fast: container index; deep: every frame)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    tasks = [(ds.files[i], ds.spec.modality, deep, _raw_options(ds, i)) for i in range(n)]
    results = run_checks(tasks, workers, progress, desc=f"{ds.spec.key} {ds.split}")
    report = summarise(
        results, [ds.classes[ds.labels[i]] for i in range(n)], ds.spec.modality, ds.spec.clip.frames, ds.spec.clip.loop
    )
    report["examples"] = len(ds)
    for name in ds.classes:
        report["classes"].setdefault(name, 0)
    empty = [c for c, k in report["classes"].items() if k == 0]
    if empty and limit is None:
        report["suspicious"].append(
            {
                "path": ds.spec.root_for(ds.split),
                "reason": f"{len(empty)} class(es) without readable examples: {empty[:5]}",
            }
        )
    if ds.missing:
        report["missing"] = list(ds.missing)
    return report


def plain_files(path: Path) -> tuple[str, list[str]] | None:
    """(modality, media files under ``path``) when it holds media files itself, i.e. is not a class folder."""
    own = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
    if not own:
        return None
    media = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in media)
    videos = [f for f in files if f.lower().endswith(VIDEO_EXTENSIONS) and not f.lower().endswith(".gif")]
    modality = "video" if len(videos) * 2 >= len(files) else "image"
    wanted = VIDEO_EXTENSIONS if modality == "video" else IMAGE_EXTENSIONS
    return modality, [f for f in files if f.lower().endswith(wanted)]


def _check_plain(
    path: Path, modality: str, files: list[str], limit: int | None, deep: bool, workers: int, progress: bool
) -> dict[str, Any]:
    files = files[:limit] if limit is not None else files
    results = run_checks([(f, modality, deep, None) for f in files], workers, progress, desc=path.name)
    split = summarise(results, [None] * len(files), modality, clip_frames=1, loop=True)
    split["examples"] = len(files)
    usable = not split["unreadable"] and split["readable"] > 0
    return {
        "path": str(path),
        "usable": usable,
        "mode": "deep" if deep else "fast",
        "sources": [
            {"key": path.name, "modality": modality, "format": "files", "root": str(path), "splits": {"files": split}}
        ],
    }


def check_dataset(
    path: str | Path,
    splits: Iterable[str] = ("train", "test"),
    limit: int | None = None,
    *,
    deep: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """The full report; ``report["usable"]`` is False if any split failed to index or has unreadable files.

    A folder holding media files itself (not only class sub-folders) is checked file by file.
    """
    mode = "deep" if deep else "fast"
    try:
        folder = Path(path)
        plain = plain_files(folder) if folder.is_dir() and not (folder / "sources.yaml").is_file() else None
        if plain is not None:
            return _check_plain(folder, *plain, limit, deep, workers, progress)
        specs = specs_for_path(path)
    except DataError as exc:
        return {"path": str(path), "usable": False, "mode": mode, "error": str(exc), "sources": []}
    sources = []
    usable = True
    for spec in specs:
        entry: dict[str, Any] = {
            "key": spec.key,
            "modality": spec.modality,
            "format": spec.format,
            "root": spec.root,
            "splits": {},
        }
        for split in splits:
            if split == "test" and not _has_test_split(spec):
                continue
            try:
                ds = SourceDataset(spec, split)
            except DataError as exc:
                entry["splits"][split] = {"error": str(exc)}
                if isinstance(exc, MissingFilesError):  # every one, though the message quotes the first few
                    entry["splits"][split]["missing"] = exc.missing
                usable = False
                continue
            result = check_split(ds, limit, deep=deep, workers=workers, progress=progress)
            usable &= not result["unreadable"] and result["readable"] > 0
            entry["splits"][split] = result
        sources.append(entry)
    return {"path": str(path), "usable": usable, "mode": mode, "sources": sources}


def format_report(report: dict[str, Any], max_problems: int = 20) -> str:
    """Human-readable text of a check report."""
    lines = [f"{report['path']}: {'OK' if report['usable'] else 'NOT USABLE'} ({report.get('mode', 'fast')} check)"]
    if "error" in report:
        lines.append(f"  error: {report['error']}")
    for src in report["sources"]:
        lines.append(f"source {src['key']!r} ({src['modality']}, {src['format']}) at {src['root']}")
        for split, r in src["splits"].items():
            if "error" in r:
                lines.append(f"  {split}: ERROR {r['error']}")
                if r.get("missing"):
                    lines.append(f"    missing: {len(r['missing'])} listed files (--json lists every one)")
                continue
            classes = f", {len(r['classes'])} classes" if r["classes"] else ""
            lines.append(f"  {split}: {r['readable']}/{r['checked']} readable{classes}")
            if r["classes"]:
                per = ", ".join(f"{c}={n}" for c, n in list(r["classes"].items())[:12])
                more = " ..." if len(r["classes"]) > 12 else ""
                lines.append(f"    per class: {per}{more}")
            if r.get("missing"):
                lines.append(f"    missing (dropped, skip_missing): {len(r['missing'])}, first: {r['missing'][0]}")
            if r.get("frames"):
                f, d = r["frames"], r["duration_s"]
                lines.append(
                    f"    frames min/median/max {f['min']:.0f}/{f['median']:.0f}/{f['max']:.0f}, "
                    f"duration {d['min']:.2f}/{d['median']:.2f}/{d['max']:.2f} s"
                )
            for kind in ("unreadable", "suspicious"):
                for p in r[kind][:max_problems]:
                    lines.append(f"    {kind}: {p['path']}: {p['reason']}")
                if len(r[kind]) > max_problems:
                    lines.append(f"    ... {len(r[kind]) - max_problems} more {kind}")
    return "\n".join(lines)
