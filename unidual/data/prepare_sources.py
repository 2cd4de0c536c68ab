"""``unidual data prepare SOURCES.yaml DST``: re-encode every file a sources file names, whatever its format.

Each source is indexed with the data package's own readers (so a Kinetics CSV, an mmaction2
list, class folders or an image archive give exactly the files and labels training would see),
its files are re-encoded (videos) or copied / resized (images) under ``DST/<key>/`` keeping
their paths relative to the source's root, and ``DST/sources.yaml`` describes the result in the
``list`` format: ``DST/<key>/train.txt`` / ``test.txt`` with one ``path label`` line per example,
the label map spelled out, and the source's ``clip`` and ``transform`` settings kept. Untrimmed
Kinetics rows become their own trimmed clips (``<id>_<start>_<end>.mp4``).

The same guarantees as the folder mode hold (:mod:`unidual.data.prepare`): complete files only,
resumable, a full disk stops the run, and an example whose file could not be written is left
out of the new list and named in ``DST/prepare_unreadable.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from unidual.atomicfile import write_atomic
from unidual.data import archive as archive_mod
from unidual.data.check import _has_test_split
from unidual.data.errors import DataError
from unidual.data.mirror import locked, shown
from unidual.data.prepare import (
    Job,
    OutputError,
    PrepareOptions,
    check_destination,
    is_done,
    mp4_clashes,
    output_failure,
    run_jobs,
    video_target,
    write_unreadable,
)
from unidual.data.sourcefile import read_source_file
from unidual.data.sources import SourceSpec, build_dataset

KEPT = ("key", "modality", "clip", "transform")  # what the new spec keeps; the location keys are new


def _relative(path: str, base: str) -> PurePosixPath:
    """Where an example's file goes under ``DST/<key>/``: its path below the split's root."""
    if archive_mod.SEP in path:
        return PurePosixPath(path.split(archive_mod.SEP, 1)[1])
    rel = os.path.relpath(path, base)
    if rel.startswith(".."):  # a list naming a file outside the root: kept apart, by name
        return PurePosixPath("outside", Path(path).name)
    return PurePosixPath(Path(rel).as_posix())


def _target(rel: PurePosixPath, window: tuple[float, float] | None, clashes: set[str]) -> PurePosixPath:
    """A video's output name: ``.mp4`` (``x_avi.mp4`` beside an ``x.mp4``), a window's seconds in the name."""
    if window is not None:
        rel = rel.with_name(f"{rel.stem}_{int(window[0]):06d}_{int(window[1]):06d}{rel.suffix}")
    return PurePosixPath(video_target(Path(rel), clashes).as_posix())


def _label_writer(classes: list[str]):
    """Label texts the ``list`` reader maps back exactly: class names when none holds whitespace, else indices."""
    if not any(c.split() != [c] for c in classes):
        return lambda index: classes[index]
    if any(c.isdigit() and c != str(i) for i, c in enumerate(classes)):
        raise DataError(f"class names {classes[:5]}...: both names with spaces and numeric names; cannot list them")
    return str


def _plan_source(spec: SourceSpec, dst: Path, opts: PrepareOptions) -> dict[str, Any]:
    """Jobs and list lines of one source: ``{"jobs", "rows": {split: [(target, label, source)]}, "classes"}``."""
    if spec.format == "mmaction_rawframes":
        raise DataError(f"source {spec.key!r}: prepare re-encodes video files; raw frame folders are not one")
    datasets = {"train": build_dataset(spec, "train")}
    if _has_test_split(spec):
        datasets["test"] = build_dataset(spec, "test", datasets["train"].classes)
    separate = spec.train_root is not None or spec.test_root is not None
    rows: dict[str, list[tuple[PurePosixPath, int, str, tuple | None]]] = {}
    for split, ds in datasets.items():
        base = spec.root_for(split)
        rows[split] = []
        for entry in ds.entries:
            rel = _relative(entry.path, base)
            rel = PurePosixPath(split, rel) if separate else rel
            rows[split].append((rel, entry.label, entry.path, getattr(entry, "window", None)))
    videos = spec.modality == "video"
    clashes = mp4_clashes([Path(r) for split in rows.values() for r, *_ in split]) if videos else set()
    kind = "video" if videos else ("image" if opts.images else "copy")
    out: dict[str, Any] = {"jobs": {}, "rows": {}, "classes": datasets["train"].classes}
    for split, entries in rows.items():
        out["rows"][split] = []
        for rel, label, src, window in entries:
            target = _target(rel, window, clashes) if videos else rel
            final = dst / spec.key / target
            out["jobs"][str(final)] = (kind, src, str(final), opts, window)
            out["rows"][split].append((target, label, src))
    return out


def prepare_sources(
    sources: str | Path, dst: str | Path, opts: PrepareOptions, workers: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Prepare every source of a sources file into ``dst`` and write ``dst/sources.yaml`` (module doc)."""
    dst = Path(dst)
    specs = [SourceSpec.from_dict(d) for d in read_source_file(sources)]
    check_destination(Path(sources).parent, dst)
    if opts.short_side < 2 or opts.keyframe_interval < 1:
        raise DataError("--short-side must be >= 2 and --keyframe-interval >= 1")
    plans = {spec.key: _plan_source(spec, dst, opts) for spec in specs}  # every source indexes before any work
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{shown(dst)}: cannot create the folder ({exc.strerror or exc})") from exc
    with locked(dst):
        every: dict[str, Job] = {t: j for p in plans.values() for t, j in p["jobs"].items()}
        todo = [j for t, j in every.items() if not is_done(j[0], j[1], Path(t))]
        bad = run_jobs(todo, workers, progress)
        failed = {src for src, _ in bad}
        try:
            written, dropped = _write_lists(specs, plans, dst, failed)
            write_unreadable(dst, bad, dropped)
            write_atomic(dst / "sources.yaml", yaml.safe_dump(written, sort_keys=False, allow_unicode=True))
        except OSError as exc:  # the destination filled up while the lists were written
            raise output_failure(dst / "sources.yaml", exc) from exc
    return {
        "src": str(sources),
        "dst": str(dst),
        "written": len(todo) - len(bad),
        "already_done": len(every) - len(todo),
        "lists": sum(len(p["rows"]) for p in plans.values()),
        "unreadable": [{"path": p, "reason": r} for p, r in bad],
        "dropped_lines": [{"where": w, "name": n} for w, n in dropped],
        "unknown_lines": 0,
        "notes": [f"sources file: {shown(dst / 'sources.yaml')}"],
    }


def _write_lists(
    specs: list[SourceSpec], plans: dict[str, dict[str, Any]], dst: Path, failed: set[str]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """``DST/<key>/<split>.txt`` of every source: the new source mappings and the examples left out."""
    dropped: list[tuple[str, str]] = []
    written = []
    for spec in specs:
        plan = plans[spec.key]
        label = _label_writer(plan["classes"])
        new = {k: v for k, v in spec.to_dict().items() if k in KEPT}
        new.update(format="list", root=spec.key, classes=plan["classes"])
        for split, rows in plan["rows"].items():
            lines = [f"{t} {label(i)}\n" for t, i, src in rows if src not in failed]
            dropped += [(f"{spec.key} {split}", shown(src)) for _, _, src in rows if src in failed]
            write_atomic(dst / spec.key / f"{split}.txt", "".join(lines))
            new[split] = f"{split}.txt"
        written.append(new)
    return written, dropped
