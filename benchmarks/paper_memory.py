"""The per-GPU memory table of the paper configs, from `unidual info CONFIG --memory` (docs/gpu.md).

    .venv/bin/python benchmarks/paper_memory.py          # prints the markdown table

Runs the command itself for every configs/paper/*.yaml (the ``base-*`` files are the configs
others build on; ``unidual_aux.yaml`` is ``base-34.yaml`` with its name) as configured and with
``run.amp=bf16``, with the paper's class counts (ImageNet 1000, Kinetics-400 400). Fake tensors:
nothing is allocated, no GPU is needed; the numbers are estimates (see unidual/train/footprint.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

from common import ROOT, table

PAPER = ROOT / "configs" / "paper"
CLASSES = "imagenet=1000,kinetics=400"
GiB = 2**30


def info(config: str, *overrides: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "unidual", "info", config, "--memory", "--json", "--classes", CLASSES, *overrides],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return json.loads(out.stdout)


def gib(n: float) -> str:
    return f"{n / GiB:.2f}"


def main() -> int:
    rows = []
    for path in sorted(PAPER.glob("*.yaml")):
        if path.name.startswith("base-"):
            continue
        rel = str(path.relative_to(ROOT))
        overrides = ["finetune.checkpoint=none.pt"] if "finetuned" in path.name else []  # a path is all it checks
        print(rel, file=sys.stderr, flush=True)
        try:
            fp32, bf16 = info(rel, *overrides), info(rel, *overrides, "run.amp=bf16")
        except RuntimeError as exc:
            rows.append([f"`{path.name}`", "-", "-", "-", "-", "-", "-", f"not estimated: {exc}"])
            continue
        s = fp32["setup"]
        rows.append([
            f"`{path.name}`", f"{s['model']}-{s['depth']}", s["batch"], gib(fp32["params"]),
            gib(fp32["params"] + fp32["grads"] + fp32["optimizer"]), gib(fp32["activations"]), gib(fp32["peak"]),
            gib(bf16["peak"]),
        ])  # fmt: skip
    header = ["config", "model", "batch per GPU", "params GiB", "params + grads + momentum GiB",
              "saved activations GiB (fp32)", "peak GiB (fp32)", "peak GiB (`run.amp=bf16`)"]  # fmt: skip
    print(table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
