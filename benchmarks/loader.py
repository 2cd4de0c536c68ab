"""Data-loading throughput: clips/s of the study and protocol-A loaders, and seek vs whole-video decoding.

    .venv/bin/python benchmarks/loader.py            # prints a table, updates docs/performance.md
    .venv/bin/python benchmarks/loader.py --no-write  # print only

Needs the shared data (``$UNIDUAL_DATA`` or ../shared/data). Numbers depend on the machine
and on whatever else runs on it; the header records the CPU count.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import add_run_args, provenance, start_run, table, write_section  # noqa: E402

from unidual.data import shared_data_dir  # noqa: E402
from unidual.data.decode import probe_video, read_frames, read_video  # noqa: E402
from unidual.data.mixing import MixedDataset, MixedSampler, collate_mixed  # noqa: E402
from unidual.data.motion import build_motion_dataset  # noqa: E402
from unidual.data.sources import SourceSpec, build_dataset  # noqa: E402

SECTION = "Data loading"


def loader_rate(datasets: dict, batch_size: int, batches: int, workers: int) -> float:
    """Examples per second through a DataLoader over a MixedSampler, worker start-up included."""
    sizes = {k: len(d) for k, d in datasets.items()}
    sampler = MixedSampler(sizes, batch_size=batch_size, epoch_size=batch_size * batches, seed=0)
    loader = DataLoader(
        MixedDataset(datasets),
        batch_sampler=sampler,
        collate_fn=collate_mixed,
        num_workers=workers,
        persistent_workers=False,
    )
    for name, d in datasets.items():  # warm the per-process caches (archive index) before timing
        d[0]
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += sum(s["input"].shape[0] for s in batch.sub.values())
    return n / (time.perf_counter() - start)


def study_sources(cache: Path, data: Path) -> dict:
    specs = build_motion_dataset(
        data / "images" / "cifar10-jpeg.tar.gz",
        cache,
        train_videos=600,
        test_videos=60,
        image_train=5000,
        image_test=500,
    )
    return {k: build_dataset(s, "train") for k, s in specs.items()}


def protocol_a_source(data: Path, tmp: Path) -> dict:
    videos = sorted((data / "videos").rglob("*.mp4")) + sorted((data / "videos").rglob("*.mkv"))
    (tmp / "list.txt").write_text("".join(f"{p} {i % 4}\n" for i, p in enumerate(videos)))
    spec = SourceSpec.from_dict(
        dict(
            key="kinetics",
            modality="video",
            format="mmaction_list",
            root="/",
            train=str(tmp / "list.txt"),
            clip={"frames": 8},
            transform={"protocol": "A"},
        )
    )
    return {"kinetics": build_dataset(spec, "train")}


def seek_vs_full(path: Path, clips: int, frames: int = 8) -> tuple[float, float]:
    """Seconds per 8-frame clip at random positions: seek + decode forward vs decode everything."""
    info = probe_video(path)
    rng = random.Random(0)
    starts = [rng.randrange(info.num_frames - frames) for _ in range(clips)]
    t0 = time.perf_counter()
    for s in starts:
        read_frames(path, list(range(s, s + frames)), info)
    seek = (time.perf_counter() - t0) / clips
    full_runs = max(1, min(3, clips // 5))
    t0 = time.perf_counter()
    for s in starts[:full_runs]:
        read_video(path)[s : s + frames]
    full = (time.perf_counter() - t0) / full_runs
    return seek, full


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30, help="timed batches per loader setting")
    parser.add_argument("--clips", type=int, default=20, help="clips for the seek benchmark")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    add_run_args(parser)
    parser.set_defaults(threads=1)  # decoding is per process; one thread per loader worker, as in training
    args = parser.parse_args()
    load_before = start_run(args)
    data = shared_data_dir()
    if not (data / "videos").is_dir():
        print(f"shared data not found at {data}", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        study = study_sources(tmp_path / "motion", data)
        build_s = time.perf_counter() - t0
        proto_a = protocol_a_source(data, tmp_path)
        for workers in args.workers:
            rows.append(
                (
                    "study: CIFAR + CIFAR-motion 32 px, 8 frames, batch 32 (16+16)",
                    workers,
                    loader_rate(study, 32, args.batches, workers),
                )
            )
            rows.append(
                (
                    "protocol A: real videos -> 8x112x112, batch 8",
                    workers,
                    loader_rate(proto_a, 8, max(args.batches // 4, 3), workers),
                )
            )
    long_video = data / "videos" / "intel-samples" / "one-by-one-person-detection.mp4"
    info = probe_video(long_video)
    seek, full = seek_vs_full(long_video, args.clips)
    body = "\n".join(
        [
            provenance(load_before),
            "",
            "Examples/s counts clips (videos) and images delivered by the mixed DataLoader, worker start-up included.",
            "",
            table(["loader", "workers", "examples/s"], [[name, w, f"{rate:.1f}"] for name, w, rate in rows]),
            "",
            f"Seek-decoding vs whole-video decoding, 8-frame clips at random positions of "
            f"`{long_video.name}` ({info.num_frames} frames, {info.width}x{info.height}, {info.duration:.0f} s):",
            "",
            "| method | s / clip |",
            "|---|---|",
            f"| seek to keyframe + decode forward (`read_frames`) | {seek:.3f} |",
            f"| decode the whole video (`read_video`) | {full:.3f} |",
            f"| speed-up | {full / seek:.0f}x |",
            "",
            f"Building the 660-video CIFAR-motion set used above took {build_s:.1f} s.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
