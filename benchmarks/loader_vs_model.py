"""Study configuration: examples/s the data loader delivers vs examples/s a training step consumes.

    .venv/bin/python benchmarks/loader_vs_model.py             # updates docs/performance.md
    .venv/bin/python benchmarks/loader_vs_model.py --no-write
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
``benchmarks/recipe_transforms.py`` compares the transforms with and without the switches, and
with the code before the recipe, in interleaved A/B rounds (robust on a busy machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import torch
from common import (
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

from unidual.data import build_dataset
from unidual.data.mixing import MixedDataset, MixedSampler, collate_mixed
from unidual.data.mixup import Mixer, mix_sources
from unidual.train.build import model_for_config
from unidual.train.config import TrainConfig
from unidual.train.objectives import LossModule, Objective

SECTION = "Study: data loader vs training step"
RECIPE_SECTION = "Study: data loader vs training step, recipe switches on"


def add_transform_switches(parser: argparse.ArgumentParser, on: bool = False) -> None:
    """``--randaugment N M``, ``--scale LO HI``, ``--color-jitter S``; ``on``: default to the usual recipe values."""
    parser.add_argument(
        "--randaugment",
        type=int,
        nargs=2,
        metavar=("N", "M"),
        default=[2, 9] if on else None,
        help="transform.randaugment",
    )
    parser.add_argument(
        "--scale",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=[0.08, 1.0] if on else None,
        help="transform.scale",
    )
    parser.add_argument(
        "--color-jitter", type=float, default=0.4 if on else 0.0, help="transform.color_jitter strength"
    )


def switched(plan: Any, args: argparse.Namespace) -> Any:
    """``plan`` with the command's transform switches on."""
    return dataclasses.replace(
        plan,
        randaugment=tuple(args.randaugment) if args.randaugment else None,
        scale=tuple(args.scale) if args.scale else None,
        color_jitter=args.color_jitter,
    )


def datasets(cfg: TrainConfig, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """The study's training sets; the recipe's transform switches from ``args`` applied to every source."""
    sets = {s.key: build_dataset(s, "train") for s in cfg.sources}
    if args is not None and augmenting(args):
        for ds in sets.values():
            ds.plan = switched(ds.plan, args)
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
    return sum(int(v["label"].numel()) for v in batch.sub.values())


def pipeline_rate(cfg: TrainConfig, sets: dict[str, Any], batches: int, workers: int) -> float:
    """Examples/s of loader + training step together (first batch excluded: start-up and warm-up)."""
    module, opt = train_module(cfg, sets)
    gen = torch.Generator().manual_seed(0)
    n, start = 0, None
    for i, batch in enumerate(make_loader(sets, cfg.optim.batch_size, batches + 1, workers)):
        step(module, opt, batch.sub, gen)
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
    add_transform_switches(parser)
    parser.add_argument("--mixup", type=float, default=0.0, help="transform.mixup alpha (in the training step)")
    parser.add_argument("--cutmix", type=float, default=0.0, help="transform.cutmix alpha (in the training step)")
    add_run_args(parser)
    args = parser.parse_args()
    load_before = start_run(args)
    peak = matmul_peak()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, info = reduced_study_config(Path(tmp) / "motion")
        sets = datasets(cfg, args)
        batch = cfg.optim.batch_size
        if args.mixup or args.cutmix:
            MIXERS.update({k: Mixer(mixup=args.mixup, cutmix=args.cutmix) for k in sets})
            CLASSES.update({k: len(d.classes) for k, d in sets.items()})
        loader = {w: loader_rate(sets, batch, args.batches, w) for w in args.workers}
        real = list(islice(make_loader(sets, batch, 8, 0), 8))
        module, opt = train_module(cfg, sets)
        gen = torch.Generator().manual_seed(0)
        feed = cycle(real)
        times = interleaved(
            {"step": lambda: step(module, opt, next(feed).sub, gen)}, rounds=args.rounds, warmup=3, verbose=False
        )
        per_step = median(times["step"])
        model_rate = batch / per_step
        pipe = {w: pipeline_rate(cfg, sets, args.batches, w) for w in args.workers}
    shares = {k: int(v["label"].numel()) for k, v in real[0].sub.items()}
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
    rows += [
        [f"loader + step together, {w} workers", f"{r:.0f}", f"{r * video_share:.0f}", f"{r / model_rate:.2f}x"]
        for w, r in pipe.items()
    ]
    best = max(loader.values()) / model_rate
    clip = next(s.clip for s in cfg.sources if s.modality == "video")
    on = switches(args)
    recipe = f"Recipe switches on every source: `{on}`. " if on else ""
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
            ],
        )
    return 0 if best > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
