#!/usr/bin/env bash
# Every benchmark in turn (~20-40 min on 2 busy cores), then the summary table.
# Each script updates its own section of docs/performance.md; pass --no-write to a script to only print.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY benchmarks/model_speed.py --compile
$PY benchmarks/pathways.py
$PY benchmarks/aux_step.py --compile
$PY benchmarks/compile_cache.py
$PY benchmarks/loader_vs_model.py
$PY benchmarks/loader_vs_model.py --randaugment 2 9 --scale 0.08 1 --color-jitter 0.4 --mixup 0.8 --cutmix 1.0
$PY benchmarks/recipe_transforms.py
$PY benchmarks/recipe_wiring.py
$PY benchmarks/trainer_speed.py --baseline 79ccd47 --rounds 9 --updates 150
$PY benchmarks/memory.py
$PY benchmarks/allocator.py
$PY benchmarks/loader.py
$PY benchmarks/data_scale.py
$PY benchmarks/summary.py
