"""Study configuration: examples/s the data loader delivers vs examples/s a training step consumes.

    .venv/bin/python benchmarks/loader_vs_model.py             # updates docs/performance.md
    .venv/bin/python benchmarks/loader_vs_model.py --no-write
    .venv/bin/python benchmarks/loader_vs_model.py --baseline 79ccd47   # + transforms before/after, switches off
    .venv/bin/python benchmarks/loader_vs_model.py --randaugment 2 9 --scale 0.08 1 --color-jitter 0.4 \
        --mixup 0.8 --cutmix 1.0                                 # the recipe's switches on every source

Uses configs/cpu/study/base.yaml on a reduced CIFAR-motion set with the study's build settings
(benchmarks/study_setup.py). Three measurements, all at the config's batch size:

* *loader*: the trainer's DataLoader (MixedSampler + MixedDataset + collate_mixed) alone, with 0
  and 2 workers, worker start-up included (``loader.loader_rate``);
* *model*: the study model's training step (the trainer's ``LossModule`` + ``Objective`` + SGD) on
  real batches from that loader, timed in interleaved rounds;
* *pipeline*: both together, as ``unidual train`` runs them (loader feeding the step), 0 and 2 workers.

Recipe switches (docs/training.md "Recipe"): ``--randaugment N M``, ``--scale LO HI`` and
``--color-jitter S`` set every source's training transform (clip-consistent augmentation on
uint8 frames, in the loader); ``--mixup A`` / ``--cutmix A`` mix every source's sub-batch in the
training step. With any switch on, the results go to their own section and summary rows.
``--baseline REV`` also times the transforms of git revision REV (the code before the recipe)
against this tree's with every switch off, interleaved in one run: the per-example transform
time on recorded decoded frames, and the 0-worker loader with each version patched in.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import torch
from common import (
    ROOT,
    add_run_args,
    interleaved,
    matmul_peak,
    median,
    provenance,
    save_summary,
    start_run,
    table,
    write_section,
)
from loader import loader_rate
from study_setup import BASE, reduced_study_config
from torch.utils.data import DataLoader

import unidual.data.sources
import unidual.data.views
from unidual.data import build_dataset
from unidual.data.mixing import MixedDataset, MixedSampler, collate_mixed
from unidual.data.mixup import Mixer, mix_sources
from unidual.train.config import TrainConfig
from unidual.train.objectives import LossModule, Objective
from unidual.train.trainer import model_for_config

SECTION = "Study: data loader vs training step"
RECIPE_SECTION = "Study: data loader vs training step, recipe switches on"
BEFORE_AFTER_SECTION = "Study transforms before/after the recipe (switches off)"


def datasets(cfg: TrainConfig, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """The study's training sets; the recipe's transform switches from ``args`` applied to every source."""
    sets = {s.key: build_dataset(s, "train") for s in cfg.sources}
    if args is not None and augmenting(args):
        for ds in sets.values():
            ds.plan = dataclasses.replace(
                ds.plan,
                randaugment=tuple(args.randaugment) if args.randaugment else None,
                scale=tuple(args.scale) if args.scale else None,
                color_jitter=args.color_jitter,
            )
    return sets


def augmenting(args: argparse.Namespace) -> bool:
    return bool(args.randaugment or args.scale or args.color_jitter)


def switches(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe switches that are on, as the command gave them."""
    on = {
        "randaugment": args.randaugment,
        "scale": args.scale,
        "color_jitter": args.color_jitter,
        "mixup": args.mixup,
        "cutmix": args.cutmix,
    }
    return {k: v for k, v in on.items() if v}


def make_loader(sets: dict[str, Any], batch: int, batches: int, workers: int) -> DataLoader:
    sampler = MixedSampler({k: len(d) for k, d in sets.items()}, batch_size=batch, epoch_size=batch * batches, seed=0)
    return DataLoader(MixedDataset(sets), batch_sampler=sampler, collate_fn=collate_mixed, num_workers=workers)


def train_module(cfg: TrainConfig, sets: dict[str, Any]) -> tuple[LossModule, torch.optim.Optimizer]:
    """The study model and objective, built as the trainer builds them."""
    model = model_for_config(cfg, {k: len(d.classes) for k, d in sets.items()})
    module = LossModule(model, Objective.from_config(cfg)).train()
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
    )
    return module, opt


MIXERS: dict[str, Mixer] = {}  # source -> Mixer when --mixup / --cutmix (set in main)
CLASSES: dict[str, int] = {}


def step(module: LossModule, opt: torch.optim.Optimizer, sub: dict, gen: torch.Generator) -> None:
    parts = {k: {"input": v["input"], "label": v["label"]} for k, v in sub.items()}
    if MIXERS:
        parts = mix_sources(parts, MIXERS, CLASSES, gen)
    loss, _ = module(parts, gen)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def examples(batch: dict) -> int:
    return sum(int(v["label"].numel()) for v in batch["sub"].values())


def pipeline_rate(cfg: TrainConfig, sets: dict[str, Any], batches: int, workers: int) -> float:
    """Examples/s of loader + training step together (first batch excluded: start-up and warm-up)."""
    module, opt = train_module(cfg, sets)
    gen = torch.Generator().manual_seed(0)
    n, start = 0, None
    for i, batch in enumerate(make_loader(sets, cfg.optim.batch_size, batches + 1, workers)):
        step(module, opt, batch["sub"], gen)
        if i == 0:
            start = time.perf_counter()
        else:
            n += examples(batch)
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches per loader / pipeline measurement")
    parser.add_argument("--rounds", type=int, default=15, help="timed training steps (median reported)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--randaugment", type=int, nargs=2, metavar=("N", "M"), help="transform.randaugment {n, m}")
    parser.add_argument("--scale", type=float, nargs=2, metavar=("LO", "HI"), help="transform.scale [lo, hi]")
    parser.add_argument("--color-jitter", type=float, default=0.0, help="transform.color_jitter strength")
    parser.add_argument("--mixup", type=float, default=0.0, help="transform.mixup alpha (in the training step)")
    parser.add_argument("--cutmix", type=float, default=0.0, help="transform.cutmix alpha (in the training step)")
    parser.add_argument("--baseline", metavar="REV", help="also time REV's transforms vs this tree's (switches off)")
    parser.add_argument(
        "--ab-rounds", type=int, default=7, help="interleaved rounds of the A/B timings (before/after, switches off/on)"
    )
    add_run_args(parser)
    args = parser.parse_args()
    load_before = start_run(args)
    peak = matmul_peak()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, info = reduced_study_config(Path(tmp) / "motion")
        if args.baseline:
            before_after(cfg, args, load_before, peak)
        sets = datasets(cfg, args)
        batch = cfg.optim.batch_size
        if args.mixup or args.cutmix:
            MIXERS.update({k: Mixer(mixup=args.mixup, cutmix=args.cutmix) for k in sets})
            CLASSES.update({k: len(d.classes) for k, d in sets.items()})
        loader = {w: loader_rate(sets, batch, args.batches, w) for w in args.workers}
        off_on = loader_off_on(cfg, sets, args) if augmenting(args) else None
        real = list(islice(make_loader(sets, batch, 8, 0), 8))
        module, opt = train_module(cfg, sets)
        gen = torch.Generator().manual_seed(0)
        feed = cycle(real)
        times = interleaved(
            {"step": lambda: step(module, opt, next(feed)["sub"], gen)}, rounds=args.rounds, warmup=3, verbose=False
        )
        per_step = median(times["step"])
        model_rate = batch / per_step
        pipe = {w: pipeline_rate(cfg, sets, args.batches, w) for w in args.workers}
    shares = {k: int(v["label"].numel()) for k, v in real[0]["sub"].items()}
    video_share = sum(n for k, n in shares.items() if cfg.modalities[k] == "video") / max(1, sum(shares.values()))
    rows = [
        [f"loader, {w} workers", f"{r:.0f}", f"{r * video_share:.0f}", f"**{r / model_rate:.1f}x**"]
        for w, r in loader.items()
    ]
    rows.append(
        [
            f"training step ({cfg.model.name}, depth {cfg.model.depth}, width {cfg.model.width})",
            f"{model_rate:.0f}",
            f"{model_rate * video_share:.0f}",
            "1.0x",
        ]
    )
    if off_on is not None:
        rows += [
            [f"loader, 0 workers, switches {name} (interleaved A/B, median)", f"{r:.0f}", f"{r * video_share:.0f}", ""]
            for name, r in off_on.items()
        ]
    rows += [
        [f"loader + step together, {w} workers", f"{r:.0f}", f"{r * video_share:.0f}", f"{r / model_rate:.2f}x"]
        for w, r in pipe.items()
    ]
    best = max(loader.values()) / model_rate
    clip = next(s.clip for s in cfg.sources if s.modality == "video")
    on = switches(args)
    recipe = f"Recipe switches on every source: `{on}`. " if on else ""
    if off_on is not None:
        recipe += (
            f"The transform switches cost the 0-worker loader {off_on['off'] / off_on['on']:.2f}x its time "
            f"(switches off vs on, {args.ab_rounds} interleaved rounds). "
        )
    body = "\n".join(
        [
            provenance(load_before) + f" fp32 matmul rate {peak:.0f} GFLOP/s.",
            recipe
            + f"Config {BASE.relative_to(BASE.parents[3])} (batch {batch}, `data.num_workers: {cfg.data.num_workers}`, "
            f"`run.channels_last: {cfg.run.channels_last}`), CIFAR-motion rebuilt reduced with the study's settings "
            f"{info['build']} ({info['train_videos']} train videos, {info['image_train']} train images; built in "
            f"{info['build_seconds']:.0f} s); clips of {clip.frames} frames. Batch composition: {shares}. "
            f"Training step: median of {args.rounds} steps on real batches.",
            "",
            table(["what", "examples/s", "of which clips/s", "vs training step"], rows),
            "",
            "The loader alone runs on otherwise idle cores; in training the workers share the 2 cores with the "
            "step, which is why the pipeline rows, not the ratio, are what `unidual train` achieves.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(RECIPE_SECTION if on else SECTION, body)
        save_summary(
            "loader_vs_model_recipe" if on else "loader_vs_model",
            [
                {
                    "metric": f"study loader examples/s vs training-step examples/s ({w} workers)"
                    + (", recipe switches on" if on else ""),
                    "target": ">= 3x",
                    "measured": f"{r / model_rate:.1f}x ({r:.0f} vs {model_rate:.0f})",
                    "met": r / model_rate >= 3,
                    "note": f"pipeline (loader + step) {pipe[w]:.0f} ex/s",
                }
                for w, r in loader.items()
            ]
            + (
                []
                if off_on is None
                else [
                    {
                        "metric": "study loader (0 workers): time with the transform switches / without",
                        "target": "(info)",
                        "measured": f"{off_on['off'] / off_on['on']:.2f}x",
                        "met": None,
                        "note": f"{off_on['on']:.0f} vs {off_on['off']:.0f} ex/s, interleaved",
                    }
                ]
            ),
        )
    return 0 if best > 0 else 1


def loader_off_on(cfg: TrainConfig, sets: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """0-worker loader examples/s without and with the transform switches, in interleaved rounds."""
    plain = datasets(cfg)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for r in range(args.ab_rounds):
        for name in ("off", "on") if r % 2 == 0 else ("on", "off"):
            rates[name].append(loader_rate(plain if name == "off" else sets, cfg.optim.batch_size, args.batches, 0))
    return {k: median(v) for k, v in rates.items()}


def baseline_transforms(rev: str) -> Any:
    """``unidual/data/transforms.py`` as it was at git revision ``rev``, imported as its own module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:unidual/data/transforms.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader("baseline_transforms", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    exec(compile(source, f"{rev}:unidual/data/transforms.py", "exec"), module.__dict__)
    return module


def use_apply_plan(fn: Any) -> None:
    """Point the datasets (images: sources.py, clips: views.py) at ``fn`` as their ``apply_plan``."""
    unidual.data.sources.apply_plan = fn  # type: ignore[attr-defined]
    unidual.data.views.apply_plan = fn


def before_after(cfg: TrainConfig, args: argparse.Namespace, load_before: str, peak: float) -> None:
    """REV's transforms vs this tree's, every switch off: per-example time on recorded frames, 0-worker loader."""
    import random

    old, new = baseline_transforms(args.baseline).apply_plan, unidual.data.views.apply_plan
    sets = datasets(cfg)
    calls: list[tuple[Any, Any]] = []  # (frames, plan) of real examples, decoded once

    def record(frames: Any, plan: Any, rng: Any) -> Any:
        calls.append((frames, plan))
        return new(frames, plan, rng)

    use_apply_plan(record)
    for ds in sets.values():
        for i in range(0, len(ds), max(1, len(ds) // 64)):
            ds[i]
    use_apply_plan(new)

    def run_all(fn: Any) -> None:
        rng = random.Random(0)
        for frames, plan in calls:
            fn(frames, plan, rng)

    times = interleaved(
        {"before": lambda: run_all(old), "after": lambda: run_all(new)},
        rounds=args.ab_rounds,
        warmup=2,
        verbose=False,
    )
    per_example = {k: median(v) / len(calls) * 1e6 for k, v in times.items()}
    loader: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(args.ab_rounds):
        for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
            use_apply_plan(old if name == "before" else new)
            loader[name].append(loader_rate(sets, cfg.optim.batch_size, args.batches, 0))
    use_apply_plan(new)
    rate = {k: median(v) for k, v in loader.items()}
    transform_ratio = per_example["after"] / per_example["before"]
    loader_ratio = rate["before"] / rate["after"]
    rows = [
        [
            "transforms alone, µs per example (median of rounds)",
            f"{per_example['before']:.0f}",
            f"{per_example['after']:.0f}",
            f"**{transform_ratio:.3f}x**",
        ],
        [
            "loader, 0 workers, examples/s (median of rounds)",
            f"{rate['before']:.0f}",
            f"{rate['after']:.0f}",
            f"**{loader_ratio:.3f}x**",
        ],
    ]
    body = "\n".join(
        [
            provenance(load_before) + f" fp32 matmul rate {peak:.0f} GFLOP/s.",
            f"`unidual/data/transforms.py` of revision `{args.baseline}` (before the recipe) vs this tree's, every recipe "
            f"switch off, on the study config's sources (reduced CIFAR-motion): the transform of {len(calls)} recorded "
            f"examples (decoded once), and the 0-worker loader ({args.batches} batches) with each version patched in; "
            f"{args.ab_rounds} interleaved rounds each.",
            "",
            table(["what", f"before ({args.baseline})", "after (this tree)", "time after / before"], rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(BEFORE_AFTER_SECTION, body)
        save_summary(
            "recipe_transforms_off",
            [
                {
                    "metric": "study transforms with every recipe switch off: time vs before the recipe",
                    "target": "<= 1.03x",
                    "measured": f"{transform_ratio:.3f}x",
                    "met": transform_ratio <= 1.03,
                    "note": f"0-worker loader {loader_ratio:.3f}x ({rate['after']:.0f} vs {rate['before']:.0f} ex/s)",
                }
            ],
        )


if __name__ == "__main__":
    sys.exit(main())
