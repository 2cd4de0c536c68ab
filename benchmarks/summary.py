"""Collect the summary rows the benchmarks stored in benchmarks/results/*.json into docs/performance.md.

    .venv/bin/python benchmarks/summary.py            # rewrites the "Summary" section
    .venv/bin/python benchmarks/summary.py --no-write

Each benchmark saves ``{metric, target, measured, met, note}`` rows when it updates its own
section, so the summary always shows the latest run of every benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import RESULTS, table, write_section

SECTION = "Summary"
ORDER = ["model_speed", "pathways", "aux_step", "loader_vs_model", "memory", "allocator"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    files = sorted(RESULTS.glob("*.json"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    if not files:
        print(f"no results in {RESULTS}: run the benchmarks first (benchmarks/run_all.sh)", file=sys.stderr)
        return 1
    rows, machines = [], set()
    for path in files:
        data = json.loads(path.read_text())
        machines.add(data["machine"])
        for r in data["rows"]:
            met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
            rows.append([r["metric"], r["target"], r["measured"], met, r.get("note", "")])
    body = "\n".join(
        [
            "Latest run of each benchmark (details and exact commands in the sections below) on "
            + "; ".join(sorted(machines))
            + ". The spread over repeated runs and the reasons for the targets "
            "not met are in *Reading the results* at the end.",
            "",
            table(["metric", "target", "measured", "met?", "note"], rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
