"""Allocator tuning (unidual/runtime.py) on vs off: time, page faults and peak RSS of the same work.

    .venv/bin/python benchmarks/allocator.py                 # all workloads; updates the docs
    .venv/bin/python benchmarks/allocator.py --workloads aux_slim --no-write

``mallopt`` acts on the whole process and cannot be undone cleanly, so every measurement is a
fresh child process (``UNIDUAL_MALLOC_TUNING=1`` or ``0``), alternated on / off over the rounds.
A child builds one workload, warms it up, then reports the median seconds per call, the minor
page faults per call and its peak RSS. Workloads: the study's UniDual-Aux training step
(``aux_slim``, as benchmarks/aux_step.py), the study UniDual's video and image pathways at
inference on 64 inputs (``video_slim`` / ``image_slim``), and the R(2+1)D-18 training step of
benchmarks/model_speed.py at batch 8, 8x112² (``r2plus1d18``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from common import add_run_args, provenance, save_summary, start_run, table, write_section

SECTION = "Allocator tuning"
WORKLOADS = {  # name -> (description, calls per child)
    "aux_slim": ("UniDual-Aux training step, study size (depth 10, width 0.25, 32 px, 8 images + 8 clips)", 15),
    "video_slim": ("study UniDual, video pathway, inference on 64 clips of 8x32x32", 15),
    "image_slim": ("study UniDual, image pathway, inference on 64 images of 32x32", 30),
    "r2plus1d18": ("R(2+1)D-18 training step, batch 8 of 8x112x112, 400 classes", 3),
}


def workload(name: str) -> Callable[[], None]:
    from aux_step import batch, step_fn
    from pathways import build

    if name == "aux_slim":
        return step_fn("unidual_aux", 10, 0.25, 8, batch(8, 8, 8, 32))[0]
    if name in ("video_slim", "image_slim"):
        model = build(10, 0.25, 8)
        pathway = name.split("_")[0]
        x = torch.randn(64, 3, 32, 32) if pathway == "image" else torch.randn(64, 3, 8, 32, 32)

        def infer() -> None:
            with torch.no_grad():
                model(x, pathway=pathway)

        return infer
    from unidual.models import create_model

    model = create_model("r2plus1d", depth=18, layout="torchvision", heads={"kinetics": 400}).train()
    clips, labels = torch.randn(8, 3, 8, 112, 112), torch.randint(400, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(clips)["kinetics"], labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def child(name: str, threads: int | None) -> None:
    """Runs in the child process: time one workload and print one JSON line."""
    from unidual.runtime import tune_allocator

    applied = tune_allocator()  # what the CLI and the trainer do first; honours UNIDUAL_MALLOC_TUNING
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    fn = workload(name)
    calls = WORKLOADS[name][1]
    for _ in range(2):
        fn()
    times = []
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "applied": applied,
                "seconds": statistics.median(times),
                "faults": (usage.ru_minflt - faults0) / calls,
                "rss_mb": usage.ru_maxrss / 1024,
            }
        )
    )


def run_child(name: str, tuned: bool, threads: int | None) -> dict:
    env = dict(os.environ, UNIDUAL_MALLOC_TUNING="1" if tuned else "0")
    cmd = [sys.executable, __file__, "--child", name] + (["--threads", str(threads)] if threads else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {name} (tuned={tuned}) failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["applied"] != tuned:
        raise RuntimeError(f"child {name}: allocator tuning applied={result['applied']}, expected {tuned}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3, help="child processes per variant, alternated")
    parser.add_argument("--child", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    add_run_args(parser)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads)
        return 0
    load_before = start_run(args)
    rows, summary = [], []
    for name in args.workloads:
        runs: dict[bool, list[dict]] = {True: [], False: []}
        for r in range(args.rounds):
            for tuned in (True, False) if r % 2 == 0 else (False, True):
                runs[tuned].append(run_child(name, tuned, args.threads))
                last = runs[tuned][-1]
                print(
                    f"  {name} round {r + 1}/{args.rounds} tuned={tuned}: {last['seconds'] * 1e3:.1f} ms, "
                    f"{last['faults']:.0f} faults/call",
                    file=sys.stderr,
                    flush=True,
                )
        on, off = (
            {k: statistics.median(x[k] for x in runs[t]) for k in ("seconds", "faults", "rss_mb")}
            for t in (True, False)
        )
        speed = off["seconds"] / on["seconds"]
        rows.append(
            [
                WORKLOADS[name][0],
                f"{off['seconds'] * 1e3:.1f}",
                f"{on['seconds'] * 1e3:.1f}",
                f"**{speed:.2f}x**",
                f"{off['faults']:.0f} / {on['faults']:.0f}",
                f"{off['rss_mb']:.0f} / {on['rss_mb']:.0f}",
            ]
        )
        summary.append(
            {
                "metric": f"allocator tuning (default), {name}: speed-up over glibc defaults",
                "target": "(info)",
                "measured": f"{speed:.2f}x",
                "met": None,
                "note": f"page faults per call {off['faults']:.0f} -> {on['faults']:.0f}; "
                f"peak RSS {off['rss_mb']:.0f} -> {on['rss_mb']:.0f} MB",
            }
        )
    body = "\n".join(
        [
            provenance(load_before),
            f"Each cell is the median over {args.rounds} fresh child processes per variant (alternated on/off); a child "
            "reports the median time of its calls after two warm-up calls. Off = glibc's defaults "
            "(`UNIDUAL_MALLOC_TUNING=0`), on = unidual's default (mmap threshold 32 MiB, trim threshold 1 GiB).",
            "",
            table(
                ["workload", "off ms", "on ms", "speed-up", "page faults per call, off / on", "peak RSS MB, off / on"],
                rows,
            ),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        save_summary("allocator", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
