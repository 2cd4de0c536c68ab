"""``unidual data check``: validate a dataset before training.

Reads every example once (images fully decoded; videos probed and their first and
last frames decoded) and reports counts per class, frame counts and durations, and
every unreadable or suspicious file with the reason.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Iterable

from unidual.data.sourcefile import read_source_file

from unidual.data import archive as archive_mod
from unidual.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, probe_video, read_frames
from unidual.data.errors import DataError
from unidual.data.sources import SourceDataset, SourceSpec

MIN_IMAGE_SIDE = 8


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
        return [SourceSpec(key=path.stem, modality="video", format="kinetics_csv", root=str(path.parent),
                           train=path.name, test=path.name)]
    if path.is_file():
        first = next((l for l in path.read_text().splitlines() if l.strip()), "")
        modality = "video" if first.rsplit(None, 1)[0].lower().endswith(VIDEO_EXTENSIONS) else "image"
        return [SourceSpec(key=path.stem, modality=modality, format="list", root=str(path.parent),
                           train=path.name, test=path.name)]
    return [_folder_spec(path)]


def _folder_spec(path: Path) -> SourceSpec:
    files = [p for p in path.rglob("*") if p.is_file()]
    videos = sum(p.suffix.lower() in VIDEO_EXTENSIONS and p.suffix.lower() != ".gif" for p in files)
    images = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in files)
    modality = "video" if videos > images else "image"
    has_splits = (path / "train").is_dir()
    return SourceSpec(key=path.name, modality=modality, format="folder", root=str(path),
                      train="train" if has_splits else ".", test="test" if (path / "test").is_dir() else None)


def _has_test_split(spec: SourceSpec) -> bool:
    """Whether a test split is declared (or, for class folders, present on disk)."""
    if spec.format != "folder":
        return spec.test is not None
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


def check_split(ds: SourceDataset, limit: int | None = None) -> dict[str, Any]:
    """Read every example of one split; collect counts, frame statistics and problems."""
    counts = {name: 0 for name in ds.classes}
    bad: list[dict[str, str]] = []
    odd: list[dict[str, str]] = []
    frames, durations = [], []
    clip = ds.spec.clip.frames
    indices: Iterable[int] = range(len(ds) if limit is None else min(limit, len(ds)))
    for i in indices:
        path = ds.files[i]
        try:
            if ds.spec.modality == "image":
                img = ds.read_image(i)
                if min(img.size) < MIN_IMAGE_SIDE:
                    odd.append({"path": path, "reason": f"tiny image {img.size[0]}x{img.size[1]}"})
            else:
                info = probe_video(path)
                read_frames(path, [0, info.num_frames - 1], info)
                frames.append(info.num_frames)
                durations.append(round(info.duration, 3))
                if info.num_frames < clip:
                    odd.append({"path": path, "reason": f"{info.num_frames} frames, shorter than a {clip}-frame clip (looped)"
                                if ds.spec.clip.loop else f"{info.num_frames} frames, padded to {clip}"})
                if not 1 <= info.fps <= 240:
                    odd.append({"path": path, "reason": f"unusual frame rate {info.fps:.2f}"})
        except DataError as exc:
            bad.append({"path": path, "reason": str(exc).replace(f"{path}: ", "", 1)})
            continue
        except Exception as exc:  # noqa: BLE001 - report anything a decoder raises
            bad.append({"path": path, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        counts[ds.classes[ds.labels[i]]] += 1
    empty = [c for c, n in counts.items() if n == 0]
    if empty and limit is None:
        odd.append({"path": ds.spec.root, "reason": f"{len(empty)} class(es) without readable examples: {empty[:5]}"})
    report: dict[str, Any] = {"examples": len(ds), "checked": len(list(indices)) if limit else len(ds),
                              "readable": sum(counts.values()), "classes": counts,
                              "unreadable": bad, "suspicious": odd}
    if ds.spec.modality == "video":
        report["frames"] = _summary([float(f) for f in frames])
        report["duration_s"] = _summary(durations)
    return report


def check_dataset(path: str | Path, splits: Iterable[str] = ("train", "test"), limit: int | None = None) -> dict[str, Any]:
    """The full report; ``report["usable"]`` is False if any split failed to index or has unreadable files."""
    try:
        specs = specs_for_path(path)
    except DataError as exc:
        return {"path": str(path), "usable": False, "error": str(exc), "sources": []}
    sources = []
    usable = True
    for spec in specs:
        entry: dict[str, Any] = {"key": spec.key, "modality": spec.modality, "format": spec.format,
                                 "root": spec.root, "splits": {}}
        for split in splits:
            if split == "test" and not _has_test_split(spec):
                continue
            try:
                ds = SourceDataset(spec, split)
            except DataError as exc:
                entry["splits"][split] = {"error": str(exc)}
                usable = False
                continue
            result = check_split(ds, limit)
            usable &= not result["unreadable"] and result["readable"] > 0
            entry["splits"][split] = result
        sources.append(entry)
    return {"path": str(path), "usable": usable, "sources": sources}


def format_report(report: dict[str, Any], max_problems: int = 20) -> str:
    """Human-readable text of a check report."""
    lines = [f"{report['path']}: {'OK' if report['usable'] else 'NOT USABLE'}"]
    if "error" in report:
        lines.append(f"  error: {report['error']}")
    for src in report["sources"]:
        lines.append(f"source {src['key']!r} ({src['modality']}, {src['format']}) at {src['root']}")
        for split, r in src["splits"].items():
            if "error" in r:
                lines.append(f"  {split}: ERROR {r['error']}")
                continue
            lines.append(f"  {split}: {r['readable']}/{r['checked']} readable, {len(r['classes'])} classes")
            per = ", ".join(f"{c}={n}" for c, n in list(r["classes"].items())[:12])
            more = " ..." if len(r["classes"]) > 12 else ""
            lines.append(f"    per class: {per}{more}")
            if r.get("frames"):
                f, d = r["frames"], r["duration_s"]
                lines.append(f"    frames min/median/max {f['min']:.0f}/{f['median']:.0f}/{f['max']:.0f}, "
                             f"duration {d['min']:.2f}/{d['median']:.2f}/{d['max']:.2f} s")
            for kind in ("unreadable", "suspicious"):
                for p in r[kind][:max_problems]:
                    lines.append(f"    {kind}: {p['path']}: {p['reason']}")
                if len(r[kind]) > max_problems:
                    lines.append(f"    ... {len(r[kind]) - max_problems} more {kind}")
    return "\n".join(lines)
