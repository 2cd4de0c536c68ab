"""Shared helpers of the benchmarks: interleaved timing, the matmul peak, machine facts, doc sections.

The machine these numbers come from is shared with other jobs, so every benchmark measures
*ratios inside one run*: the variants being compared run in interleaved rounds (A, B, C, A, B,
C, ...) after a warm-up, and each reports the median over rounds. Background load then slows
all variants alike instead of whichever happened to run during a busy minute.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from unidual.machine import matmul_gflops, matmul_peak  # noqa: E402, F401  (re-exported: the benchmarks' yardstick)


def cpu_model() -> str:
    """``lscpu``'s model name (falls back to /proc/cpuinfo, then the platform string)."""
    from unidual.machine import cpu_model as model

    return model()


def machine_line() -> str:
    """One line naming CPU, core count, torch version and intra-op threads, for the docs."""
    from unidual.runtime import tune_allocator

    omp = f", OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}" if "OMP_WAIT_POLICY" in os.environ else ""
    malloc = "" if tune_allocator() else ", glibc allocator defaults"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads{omp}{malloc}, Python {platform.python_version()}"
    )


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def add_run_args(parser) -> None:
    """The options every benchmark shares: intra-op threads and print-only."""
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")


_matmul_before: float | None = None  # fp32 matmul GFLOP/s when the benchmark started (start_run)


def start_run(args) -> str:
    """Tune the allocator as every ``unidual`` command does, apply ``--threads``, seed torch, probe the
    fp32 matmul rate; returns the load before.

    Every variant in a benchmark process shares the allocator setting (the reference too), so the
    ratios compare models, not allocators; benchmarks/allocator.py measures the allocator itself.
    """
    global _matmul_before
    from unidual.runtime import tune_allocator

    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    _matmul_before = matmul_peak()
    print(f"fp32 matmul: {_matmul_before:.0f} GFLOP/s", file=sys.stderr)
    return load_average()


def matmul_line() -> str:
    """The machine's fp32 matmul rate now (and at :func:`start_run`): the yardstick beside every ratio."""
    after = matmul_peak()
    before = f"{_matmul_before:.0f} GFLOP/s before, " if _matmul_before is not None else ""
    return f"fp32 matmul (best `torch.mm` of 1024-3072²) {before}{after:.0f} GFLOP/s after"


def provenance(load_before: str) -> str:
    """The first line of a section: the exact command, the machine, its matmul rate, the load around the run."""
    command = f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])
    return (
        f"`{command.strip()}` on {machine_line()}; {matmul_line()}; "
        f"load average {load_before} before, {load_average()} after."
    )


def interleaved(
    fns: Mapping[str, Callable[[], Any]], *, rounds: int, warmup: int = 1, verbose: bool = True
) -> dict[str, list[float]]:
    """Seconds per call of every function, measured in interleaved rounds after ``warmup`` calls each.

    The order inside a round rotates so no variant always runs right after the same other one.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
        if verbose:
            line = "  ".join(f"{n}={times[n][-1] * 1e3:.0f}ms" for n in names)
            print(f"  round {r + 1}/{rounds}: {line}", file=sys.stderr, flush=True)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_section(title: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the ``## title`` section of docs/performance.md, leaving the rest alone."""
    heading = f"## {title}"
    text = doc.read_text() if doc.is_file() else "# Performance\n"
    lines = text.splitlines()
    block = [heading, ""] + body.strip("\n").splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + block + [""] + lines[end:]
        text = "\n".join(lines).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + "\n".join(block) + "\n"
    doc.write_text(text)


def save_summary(name: str, rows: list[dict[str, Any]]) -> Path:
    """Store summary rows ``{metric, target, measured, met, note}`` for ``benchmarks/summary.py``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine_line(), "rows": rows}, indent=1) + "\n")
    return path


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
