"""Peak resident memory (RSS) of short training runs: the study configuration and the demo.

    .venv/bin/python benchmarks/memory.py                   # updates docs/performance.md
    .venv/bin/python benchmarks/memory.py --steps 3 --no-write

Each run is ``python -m unidual train|demo ... run.max_steps=N`` in a subprocess, started by a
small wrapper process that reports ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` -- the peak
RSS of the largest single process of the run (the trainer; DataLoader workers are its children
and count only if larger). The benchmark also polls /proc every 50 ms for the summed RSS of the
whole process tree (trainer + workers; shared pages counted once per process, so an upper bound).
The runs end with the trainer's own validation (on ``data.eval_limit`` examples per source), so its
memory is included. Study: configs/cpu/study/base.yaml on a reduced CIFAR-motion set
(benchmarks/study_setup.py); demo: ``unidual demo --no-compare`` on its generated dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, load_average, provenance, save_summary, table, write_section
from study_setup import reduced_study_config

from unidual.train.config import dump_config

SECTION = "Peak memory of training"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(json.dumps({'rc': rc, 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " 'seconds': time.perf_counter() - t}))\n"
)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_kb(root: int) -> int:
    """Summed RSS of ``root`` and all its descendants, from /proc/<pid>/statm."""
    tree, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            pass
        todo += tree.get(pid, [])
    return total


def measure(command: list[str], cwd: Path, log: Path) -> dict[str, float]:
    """Run ``command`` under the wrapper; its peak RSS (getrusage) and the polled peak of the tree."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, *command], cwd=cwd, stdout=subprocess.PIPE, stderr=out, text=True
        )
        peak = 0
        done = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_kb(proc.pid))
                time.sleep(0.05)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        stdout, _ = proc.communicate()
        done.set()
        thread.join()
    result = json.loads(stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {result['rc']}; see {log}")
    return {"maxrss_mb": result["maxrss_kb"] / 1024, "tree_mb": peak / 1024, "seconds": result["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training updates per run (run.max_steps)")
    parser.add_argument("--eval-limit", type=int, default=64, help="data.eval_limit of the final validation")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    common = [
        f"run.max_steps={args.steps}",
        f"data.eval_limit={args.eval_limit}",
        "run.progress=false",
        "run.plots=false",
    ]
    rows, summary = [], []
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cfg, info = reduced_study_config(tmp_path / "motion")
        config = tmp_path / "study.yaml"
        dump_config(cfg, config)
        runs = [
            (
                "baseline: `import torch, unidual.train.trainer` only",
                0,
                ["-c", "import torch, unidual.train.trainer, unidual.data"],
            ),
            (
                "study (configs/cpu/study/base.yaml)",
                cfg.data.num_workers,
                ["-m", "unidual", "train", str(config), *common, "--out", str(tmp_path / "study-run")],
            ),
            (
                "demo (configs/cpu/demo.yaml via `unidual demo --no-compare`)",
                None,
                [
                    "-m",
                    "unidual",
                    "demo",
                    *common,
                    "--no-compare",
                    "--data",
                    str(tmp_path / "demo-data"),
                    "--out",
                    str(tmp_path / "demo-run"),
                ],
            ),
        ]
        for name, workers, argv in runs:
            print(f"{name}: {' '.join(argv)}", file=sys.stderr)
            r = measure([sys.executable, *argv], ROOT, tmp_path / f"log-{len(rows)}.txt")
            rows.append(
                [
                    name,
                    "demo.yaml: 1" if workers is None else str(workers),
                    f"{r['maxrss_mb']:.0f}",
                    f"{r['tree_mb']:.0f}",
                    f"{r['seconds']:.0f}",
                ]
            )
            if name.startswith("baseline"):
                continue
            summary.append(
                {
                    "metric": f"peak RSS, {name.split(' (')[0]} training ({args.steps} steps + validation)",
                    "target": "(report)",
                    "measured": f"{r['maxrss_mb']:.0f} MB (tree {r['tree_mb']:.0f} MB)",
                    "met": None,
                    "note": "",
                }
            )
    body = "\n".join(
        [
            provenance(load_before),
            f"Each run: {args.steps} training updates (`run.max_steps={args.steps}`), then the trainer's validation on "
            f"{args.eval_limit} examples per source; the study data is the reduced CIFAR-motion set "
            f"({info['train_videos']} train videos). Both models: `unidual_aux`, depth 10, width 0.25, 32 px.",
            "",
            table(
                [
                    "run",
                    "data.num_workers",
                    "peak RSS MB (getrusage)",
                    "peak RSS MB, whole tree (polled)",
                    "wall s (incl. start-up, demo data generation)",
                ],
                rows,
            ),
            "",
            "`getrusage` is the largest single process (the trainer); the tree column adds the DataLoader workers. "
            "The baseline row is the Python + torch + unidual runtime before any data or model exists.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        save_summary("memory", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
