"""run.compile start-up: compile time of the training step with an empty vs a warm inductor cache.

    .venv/bin/python benchmarks/compile_cache.py                  # slim study step; updates docs/performance.md
    .venv/bin/python benchmarks/compile_cache.py --settings slim full --no-write

Each measurement is a fresh child process (nothing cached in memory), running the trainer's own
pieces: ``LossModule(CompiledModel(model), Objective(...))`` on one mixed batch of UniDual-Aux
(images + clips, both pathways, aux routing ``both``) with an SGD step. The first step of a shape
runs eager (``CompiledModel`` compiles a shape the second time it is seen), the second compiles
and runs, the rest are steady. *Compile time* = second step - median steady step. The cold child
gets an empty ``TORCHINDUCTOR_CACHE_DIR``; the warm child reuses it, as a second or resumed run does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import add_run_args, provenance, save_summary, start_run, table, write_section

SECTION = "torch.compile start-up: cold vs cached"
CHILD = "--child"


def child(setting: str, steps: int) -> None:
    import torch
    from aux_step import SETTINGS, batch, step_fn
    from torch._dynamo.utils import counters

    from unidual.runtime import tune_allocator
    from unidual.train.compiled import enable_compile_caches

    tune_allocator()
    enable_compile_caches()
    torch.manual_seed(0)
    depth, width, size = SETTINGS[setting]
    step, net = step_fn("unidual_aux", depth, width, 8, batch(8, 8, 8, size), compile=True)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    steady = statistics.median(times[2:])
    print(
        json.dumps(
            {
                "first": times[0],
                "compile_step": times[1],
                "steady": steady,
                "active": net.active,
                "hits": counters["inductor"]["fxgraph_cache_hit"],
                "misses": counters["inductor"]["fxgraph_cache_miss"],
            }
        )
    )


def run_child(setting: str, steps: int, cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, CHILD, setting, str(steps)], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - t0
    return result


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=["slim", "full"], default=["slim"])
    parser.add_argument("--steps", type=int, default=8, help="steps per child (2 to compile, the rest steady)")
    add_run_args(parser)
    args = parser.parse_args()
    load_before = start_run(args)
    rows, summary = [], []
    for setting in args.settings:
        with tempfile.TemporaryDirectory(prefix="unidual-inductor-") as cache:
            cold = run_child(setting, args.steps, cache)
            warm = run_child(setting, args.steps, cache)
        for name, r in (("cold (empty cache)", cold), ("warm (second run)", warm)):
            compile_s = r["compile_step"] - r["steady"]
            rows.append(
                [
                    setting,
                    name,
                    f"{compile_s:.1f}",
                    f"{r['steady'] * 1e3:.0f}",
                    f"{r['hits']} / {r['misses']}",
                    f"{r['process']:.0f}",
                    "yes" if r["active"] else "no (fell back)",
                ]
            )
        summary.append(
            {
                "metric": f"run.compile start-up, {setting} UniDual-Aux step: cold -> cached compile (s)",
                "target": "a few seconds cached",
                "measured": f"{cold['compile_step'] - cold['steady']:.0f} -> {warm['compile_step'] - warm['steady']:.1f} s",
                "met": warm["compile_step"] - warm["steady"] <= 10,
                "note": "fresh processes, same cache folder",
            }
        )
    body = "\n".join(
        [
            provenance(load_before),
            "Fresh child processes; the trainer's `LossModule(CompiledModel(model), Objective)` on one mixed batch of "
            "8 images + 8 clips of 8 frames (UniDual-Aux, both pathways, aux routing `both`), SGD step. Compile time = "
            "the compiling step minus the median steady step; the warm child reuses the cold child's "
            "`TORCHINDUCTOR_CACHE_DIR` (what a second or resumed run finds).",
            "",
            table(
                [
                    "setting",
                    "cache",
                    "compile s",
                    "steady step ms",
                    "FX-graph cache hits / misses",
                    "child process s",
                    "compiled",
                ],
                rows,
            ),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        save_summary("compile_cache", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
