"""``unidual demo``: the paper's claim on the embedded dataset, in about ten minutes on a laptop CPU.

1. generate (or reuse) the demo dataset: shape images + moving-shape videos, few of the latter;
2. train UniDual-Aux jointly on both (configs/cpu/demo.yaml);
3. train a video-only R(2+1)D with the same budget (configs/cpu/demo_r2plus1d.yaml);
4. print image top-1 and video clip@1 / video@1 of both next to chance, the run directory, and the
   wall time beside the machine's fp32 matmul rate (2-core machines differ 3-5x in it, so a time
   without it says little), all also kept in ``<out>/demo.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

import torch

from unidual.data.builtin import make_default_dataset
from unidual.machine import device_name, matmul_peak
from unidual.train.config import (
    ConfigError,
    apply_override,
    from_dict,
    read_yaml,
    validate,
)
from unidual.train.trainer import train

# shipped inside the package (package data), so an installed unidual finds them from any folder
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "cpu"
DEMO_CONFIG = CONFIG_DIR / "demo.yaml"
COMPARE_CONFIG = CONFIG_DIR / "demo_r2plus1d.yaml"


class DatasetSizes(TypedDict):
    """The example counts ``make_default_dataset`` takes: (train, test) per class."""

    images_per_class: tuple[int, int]
    videos_per_class: tuple[int, int]
    video_labels: str


# Few labelled videos, many labelled images of the same classes: the regime where the studies found
# joint training's largest gain on video (docs/results.md, "Few labelled videos, many photos of the
# same classes"). Videos labelled by the shape only (the images' 6 classes), 6 training videos per
# class, all 150 shape images per class; 64 test videos per class (384 in all, as many as before 2026-12-07).
DEMO_DATA: DatasetSizes = {"images_per_class": (150, 30), "videos_per_class": (6, 64), "video_labels": "class"}
SMOKE_DATA: DatasetSizes = {"images_per_class": (12, 4), "videos_per_class": (6, 2), "video_labels": "class"}
# what the generator decides about a source (where its files are, what they are); the config's entry
# decides the rest (head:, clip:, transform:, ...)
GENERATED = ("key", "modality", "format", "root", "train", "test", "train_root", "test_root", "classes")


def _sources(specs: dict[str, Any], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The config's sources on the generated data, in the order the config lists them."""
    out = []
    for entry in entries:
        made = specs[entry["key"]].to_dict()
        out.append({**made, **{k: v for k, v in entry.items() if k not in GENERATED}})
    return out


def _config(path: str | Path, specs: dict[str, Any], overrides: list[str]):
    raw = read_yaml(Path(path))
    keys = [s.get("key") for s in raw.get("sources", [])]
    missing = [k for k in keys if k not in specs]
    if missing:
        raise ConfigError(f"{path}: sources {missing} are not in the demo dataset (it has {sorted(specs)})")
    raw["sources"] = _sources(specs, raw["sources"])
    for text in overrides:
        apply_override(raw, text)
    cfg = from_dict(raw, str(path))
    validate(cfg, str(path))
    return cfg


def _row(name: str, metrics: dict[str, dict[str, float]], modalities: dict[str, str]) -> list[str]:
    image = next((m for k, m in metrics.items() if modalities.get(k) == "image"), None)
    video = next((m for k, m in metrics.items() if modalities.get(k) == "video"), None)
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    return [
        name,
        fmt(image and image.get("top1")),
        fmt(video and video.get("clip@1")),
        fmt(video and video.get("video@1")),
    ]


def format_results(rows: list[list[str]], chance: list[str]) -> str:
    header = ["model", "image top-1 %", "video clip@1 %", "video@1 %"]
    table = [header, *rows, ["chance", *chance]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine_summary() -> str:
    """CPU, threads and fp32 matmul rate: what a demo's wall time is read against (~0.2-1 s to probe)."""
    gflops = matmul_peak(sizes=(2048,), reps=2)
    return f"{device_name(torch.device('cpu'))}, fp32 matmul {gflops:.0f} GFLOP/s"


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"demo-{stamp}"
    data = Path(args.data) if args.data else Path("runs") / "demo-data"
    sizes = SMOKE_DATA if args.small else DEMO_DATA
    start = time.perf_counter()
    machine = machine_summary()
    print(f"machine: {machine}", file=sys.stderr)
    print(f"dataset: {data} (generated on first use, then reused)", file=sys.stderr)
    specs = make_default_dataset(data, **sizes)
    overrides = list(args.overrides)

    runs = [("UniDual-Aux (joint)", args.config, out / "unidual_aux")]
    if not args.no_compare:
        runs.append(("R(2+1)D (video only)", args.compare_config, out / "r2plus1d"))
    rows, results, modalities = [], {}, {}
    for name, config, run_dir in runs:
        cfg = _config(config, specs, overrides)
        print(
            f"training {name}: {cfg.model.name} depth {cfg.model.depth} width {cfg.model.width}, "
            f"{cfg.schedule.epochs:g} epochs of {cfg.data.epoch_size} examples -> {run_dir}",
            file=sys.stderr,
        )
        result = train(cfg, run_dir=run_dir)
        modalities.update(cfg.modalities)
        rows.append(_row(name, result.metrics, cfg.modalities))
        results[name] = {"run_dir": str(run_dir), "metrics": result.metrics}
    chance = []
    for modality, n in (("image", 1), ("video", 2)):
        key = next((k for k, m in modalities.items() if m == modality), None)
        value = "-" if key is None else f"{100.0 / len(specs[key].classes or [1]):.1f}"
        chance += [value] * n
    report = {"rows": rows, "chance": chance, "results": results, "out": str(out), "machine": machine,
              "seconds": time.perf_counter() - start, "overrides": overrides}  # fmt: skip
    (out / "demo.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
