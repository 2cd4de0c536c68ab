"""The recipe's transforms on the study data, in interleaved A/B rounds: before/after, switches off/on.

    .venv/bin/python benchmarks/recipe_transforms.py                    # updates docs/performance.md
    .venv/bin/python benchmarks/recipe_transforms.py --no-write
    .venv/bin/python benchmarks/recipe_transforms.py --baseline 79ccd47 --randaugment 2 9 --scale 0.08 1 --color-jitter 0.4

Two comparisons on the study config's sources (configs/cpu/study/base.yaml on a reduced
CIFAR-motion set, benchmarks/study_setup.py), each variant timed in alternating rounds so a busy
machine slows both alike:

* **before/after, every switch off**: ``unidual/data/transforms.py`` of git revision
  ``--baseline`` (the code before the recipe) against this tree's -- the transform alone on
  recorded decoded frames, and the 0-worker study loader with each version patched in. Target:
  at most 3 % slower.
* **switches off/on**: this tree's transforms with and without ``--randaugment``, ``--scale``
  and ``--color-jitter`` on every source -- the transform alone and the 0-worker loader. The loader
  must stay at least 3x the training step (benchmarks/loader_vs_model.py measures that ratio;
  this factor says what the switches take from it).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from loader_vs_model import add_transform_switches, switched
from study_setup import reduced_study_config

import unidual.data.sources
import unidual.data.views
from unidual.data import build_dataset
from unidual.train.config import TrainConfig

SECTION = "Study transforms: before/after the recipe, recipe switches off/on"
REPEAT = 20  # each round transforms every recorded example this often: rounds long enough to time
Transform = Callable[[Any, Any, random.Random], Any]


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


def use_apply_plan(fn: Transform) -> None:
    """Point the datasets (images: sources.py, clips: views.py) at ``fn`` as their ``apply_plan``."""
    unidual.data.sources.apply_plan = fn  # type: ignore[attr-defined]
    unidual.data.views.apply_plan = fn


def recorded_examples(sets: dict[str, Any], current: Transform) -> list[tuple[Any, Any]]:
    """(decoded frames, plan) of about 64 examples per source, read once through the datasets."""
    calls: list[tuple[Any, Any]] = []

    def record(frames: Any, plan: Any, rng: random.Random) -> Any:
        calls.append((frames, plan))
        return current(frames, plan, rng)

    use_apply_plan(record)
    for ds in sets.values():
        for i in range(0, len(ds), max(1, len(ds) // 64)):
            ds[i]
    use_apply_plan(current)
    return calls


def transform_times(
    variants: dict[str, Transform], calls: list[tuple[Any, Any]], rounds: int
) -> dict[str, tuple[float, float]]:
    """µs per example of each variant over the recorded examples: (median round, fastest round)."""

    def run(fn: Transform) -> None:
        rng = random.Random(0)
        for _ in range(REPEAT):
            for frames, plan in calls:
                fn(frames, plan, rng)

    times = interleaved({k: (lambda f=f: run(f)) for k, f in variants.items()}, rounds=rounds, warmup=2, verbose=False)
    scale = 1e6 / (REPEAT * len(calls))
    return {k: (median(v) * scale, min(v) * scale) for k, v in times.items()}


def loader_rates(
    variants: dict[str, tuple[dict[str, Any], Transform]], batch: int, batches: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """0-worker loader examples/s of each (datasets, apply_plan) variant: (median round, fastest round)."""
    rates: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sets, fn = variants[name]
            use_apply_plan(fn)
            rates[name].append(loader_rate(sets, batch, batches, 0))
    return {k: (median(v), max(v)) for k, v in rates.items()}


def rows_for(label: str, a: str, b: str, times: dict, rates: dict) -> list[list[str]]:
    """Table rows comparing variant ``b`` with ``a``: transform time and loader rate, median and fastest rounds."""
    (ta, fa), (tb, fb) = times[a], times[b]
    (ra, ba), (rb, bb) = rates[a], rates[b]
    return [
        [
            f"{label}: transforms alone, µs per example",
            f"{ta:.1f}",
            f"{tb:.1f}",
            f"**{tb / ta:.3f}x**",
            f"{fb / fa:.3f}x",
        ],
        [f"{label}: loader, 0 workers, examples/s", f"{ra:.0f}", f"{rb:.0f}", f"**{ra / rb:.3f}x**", f"{ba / bb:.3f}x"],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="79ccd47", metavar="REV", help="the revision before the recipe")
    add_transform_switches(parser, on=True)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per comparison")
    parser.add_argument("--batches", type=int, default=20, help="batches per loader measurement")
    add_run_args(parser)
    args = parser.parse_args()
    load_before = start_run(args)
    peak = matmul_peak()
    with tempfile.TemporaryDirectory() as tmp:
        cfg: TrainConfig
        cfg, _ = reduced_study_config(Path(tmp) / "motion")
        new = unidual.data.views.apply_plan
        old = baseline_transforms(args.baseline).apply_plan
        sets = {s.key: build_dataset(s, "train") for s in cfg.sources}
        switched_sets = {s.key: build_dataset(s, "train") for s in cfg.sources}
        for ds in switched_sets.values():
            ds.plan = switched(ds.plan, args)
        calls = recorded_examples(sets, new)

        def on(frames: Any, plan: Any, rng: random.Random) -> Any:
            return new(frames, switched(plan, args), rng)

        times = transform_times({"before": old, "after": new, "on": on}, calls, args.rounds)
        batch = cfg.optim.batch_size
        rates = loader_rates(
            {"before": (sets, old), "after": (sets, new), "on": (switched_sets, new)}, batch, args.batches, args.rounds
        )
        use_apply_plan(new)
    on_switches = {"randaugment": args.randaugment, "scale": args.scale, "color_jitter": args.color_jitter}
    rows = rows_for(f"before ({args.baseline}) vs after, switches off", "before", "after", times, rates)
    rows += rows_for(f"switches off vs on `{on_switches}`", "after", "on", times, rates)
    body = "\n".join(
        [
            provenance(load_before) + f" fp32 matmul rate {peak:.0f} GFLOP/s.",
            f"Study config's sources (reduced CIFAR-motion, batch {batch}): the transform of {len(calls)} recorded examples "
            f"(decoded once; each {REPEAT} times per round) and the 0-worker loader ({args.batches} batches), three variants "
            f"in {args.rounds} interleaved rounds: `transforms.py` of `{args.baseline}` (before the recipe), this tree's with "
            "every switch off, and this tree's with the switches on every source.",
            "",
            table(["comparison", "A", "B", "time B / A (median round)", "(fastest round)"], rows),
            "",
            "Reading it: with every switch off the recipe must cost nothing (target: within 3 %). The off/on loader "
            "factor is what the transform switches take from the loader-vs-step ratio of *Study: data loader vs "
            "training step* (the loader must stay >= 3x the step); `benchmarks/loader_vs_model.py --randaugment N M "
            "--scale LO HI --color-jitter S` measures that ratio with the switches on directly (section *Study: data "
            "loader vs training step, recipe switches on*). On a busy machine run both with `OMP_WAIT_POLICY=PASSIVE`: "
            "spinning intra-op threads otherwise wait for each other and slow the step several times over; the A/B "
            "rounds here keep their ratios either way.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        off = times["after"][0] / times["before"][0]
        save_summary(
            "recipe_transforms",
            [
                {
                    "metric": "study transforms, every recipe switch off: time vs before the recipe",
                    "target": "<= 1.03x",
                    "measured": f"{off:.3f}x",
                    "met": off <= 1.03,
                    "note": f"0-worker loader {rates['before'][0] / rates['after'][0]:.3f}x",
                },
                {
                    "metric": f"study 0-worker loader time, recipe transform switches on ({on_switches}) vs off",
                    "target": "(info)",
                    "measured": f"{rates['after'][0] / rates['on'][0]:.2f}x",
                    "met": None,
                    "note": f"transforms alone {times['on'][0] / times['after'][0]:.1f}x",
                },
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
