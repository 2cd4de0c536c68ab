"""The CPU training loop of this tree against an earlier revision: seconds per update, same config, same machine.

    .venv/bin/python benchmarks/trainer_speed.py --baseline 79ccd47            # updates docs/performance.md
    .venv/bin/python benchmarks/trainer_speed.py --baseline 79ccd47 --rounds 3 --no-write

Both trees train the demo's UniDual-Aux as the *baseline* tree's configs/cpu/demo.yaml gives it (one
config for both, since the comparison is of code; its pinned channels-last layout, 0 loader workers) on
a small generated copy of the demo data (the default ``class_motion`` labels that config names) for
``--updates`` updates, validating only a handful of test examples at the end. A round runs each tree
once, in its own process (``PYTHONPATH`` puts its package first), the order alternating, so a busy
machine slows both alike; the number is the median over rounds of ``Trainer.fit()``'s wall time
divided by the updates.
Target (issue 23): the GPU-readiness work leaves the CPU step within 3 % of the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine_line, matmul_peak, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "Training loop on the CPU: before/after the GPU-readiness work"

CHILD = """
import json, sys, time
import torch
torch.set_num_threads({threads})
from unidual.train.config import load_config
from unidual.train.trainer import Trainer
cfg = load_config({config!r}, {overrides!r})
trainer = Trainer(cfg, run_dir={run_dir!r})
start = time.perf_counter()
result = trainer.fit()
print(json.dumps({{"seconds": time.perf_counter() - start, "updates": result.global_step}}))
"""


def run_tree(tree: Path, config: Path, data: Path, run_dir: Path, updates: int, threads: int) -> float:
    overrides = [
        f"run.max_steps={updates}", "run.eval_every=0", "run.progress=false", "run.plots=false",
        "data.eval_limit=8", "data.num_workers=0", "run.channels_last=true",
        f"sources.0.root={data / 'shapes'}", f"sources.1.root={data / 'motion'}",
    ]  # fmt: skip
    code = CHILD.format(threads=threads, config=str(config), overrides=overrides,
                        run_dir=str(run_dir))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree), "UNIDUAL_CHANNELS_LAST": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["seconds"] / out["updates"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare with (checked out in a worktree)")
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch_threads())
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    gflops_before = matmul_peak()
    with tempfile.TemporaryDirectory(prefix="unidual-trainer-speed-") as tmp:
        tmp_path = Path(tmp)
        base = tmp_path / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline],
                       check=True, capture_output=True)  # fmt: skip
        try:
            data = tmp_path / "data"
            subprocess.run([sys.executable, "-m", "unidual", "data", "make-default", str(data),
                            "--images-per-class", "40", "10", "--videos-per-class", "6", "8"],
                           check=True, capture_output=True, cwd=ROOT)  # fmt: skip
            config = base / "configs/cpu/demo.yaml"  # one config for both trees
            times: dict[str, list[float]] = {"baseline": [], "this tree": []}
            for r in range(args.rounds):
                order = [("baseline", base), ("this tree", ROOT)]
                for name, tree in order if r % 2 == 0 else order[::-1]:
                    run_dir = tmp_path / f"run-{name}-{r}".replace(" ", "_")
                    times[name].append(run_tree(tree, config, data, run_dir, args.updates, args.threads))
                    print(f"round {r + 1}: {name} {times[name][-1] * 1e3:.1f} ms/update", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["this tree"] / med["baseline"]
    lines = [
        machine_line(),
        f"fp32 matmul: {gflops_before:.0f} GFLOP/s before, {matmul_peak():.0f} after; {args.threads} thread(s)",
        "",
        "| tree | ms per update (median of rounds) | all rounds |",
        "|---|---|---|",
        *(f"| {k} | {med[k] * 1e3:.1f} | {', '.join(f'{t * 1e3:.0f}' for t in v)} |" for k, v in times.items()),
        "",
        f"this tree / baseline ({args.baseline}): **{ratio:.3f}x** the time per update "
        f"(demo UniDual-Aux, {args.updates} updates, {args.rounds} interleaved rounds; "
        f"`python benchmarks/trainer_speed.py --baseline {args.baseline}`)",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
