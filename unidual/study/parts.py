"""Which half of a compositional label a model gets right: the appearance ("cat") or the motion ("left").

CIFAR-motion labels are ``"<CIFAR class> <motion>"``. When a joint model's video@1 is low, this
tells whether it failed to learn the motion (the part only videos carry) or the appearance
(the part the images can teach). Run on a finished study:

    unidual study-parts configs/cpu/study/study.yaml --seeds 0 1 2

It re-evaluates the final weights of every finished run that was evaluated on ``--source`` (10 clips per video,
the study's eval settings) and prints one Markdown table: per run and seed, video@1 and the
share of test videos whose predicted label has the right class part / the right motion part,
then the median per model over the seeds. (The command lives in :mod:`unidual.study.commands`.)
Each run's part accuracies are kept in its ``study_parts.json``, stamped with its checkpoint's size
and modification time, the source and the weights: rerunning on a grown study re-evaluates only the
new (or retrained) runs, instead of ~40 s a run for all of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from unidual.data.labelparts import split_label

__all__ = ["cached_parts", "collapsed", "epoch_parts", "keep_parts", "motion_chance", "part_accuracy", "split_label"]

PARTS_FILE = "study_parts.json"


def _key(checkpoint: Path, source: str, weights: str | None) -> dict[str, Any]:
    stat = checkpoint.stat()
    return {"checkpoint": [stat.st_size, stat.st_mtime_ns], "source": source, "weights": weights}


def cached_parts(run_dir: Path, checkpoint: Path, source: str, weights: str | None) -> dict[str, float] | None:
    """The part accuracies kept for exactly this checkpoint, source and weights, else None."""
    try:
        kept = json.loads((run_dir / PARTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return kept.get("parts") if kept.get("key") == _key(checkpoint, source, weights) else None


def keep_parts(run_dir: Path, checkpoint: Path, source: str, weights: str | None, parts: Mapping[str, float]) -> None:
    (run_dir / PARTS_FILE).write_text(json.dumps({"key": _key(checkpoint, source, weights), "parts": dict(parts)}))


def part_accuracy(predictions: Tensor, labels: Tensor, classes: Sequence[str]) -> dict[str, float]:
    """Percent of examples whose predicted label is right entirely / in its class part / in its motion part."""
    if len(labels) == 0:
        raise ValueError("no examples")
    parts = [split_label(c) for c in classes]
    pairs = list(zip(predictions.tolist(), labels.tolist()))
    n = len(pairs)
    return {
        "both": 100.0 * sum(p == y for p, y in pairs) / n,
        "class": 100.0 * sum(parts[p][0] == parts[y][0] for p, y in pairs) / n,
        "motion": 100.0 * sum(parts[p][1] == parts[y][1] for p, y in pairs) / n,
    }


def motion_chance(classes: Sequence[str]) -> float:
    """Percent a motion part is right by chance: one over the number of distinct motions."""
    return 100.0 / len({split_label(c)[1] for c in classes})


def collapsed(motion_part: float, classes: Sequence[str], margin: float = 5.0) -> bool:
    """The issue's collapse rule: the test motion part stays within ``margin`` points of chance."""
    return motion_part - motion_chance(classes) <= margin


def epoch_parts(records: Sequence[Mapping[str, Any]], term: str) -> dict[int, dict[str, float]]:
    """Per epoch (1-based), the mean over its ``train`` records of the term's training accuracy and,
    where ``run.label_parts`` logged them, its class and motion parts (``clip``, ``class``, ``motion``)."""
    keys = {"clip": f"acc/{term}", "class": f"acc_class/{term}", "motion": f"acc_motion/{term}"}
    sums: dict[int, dict[str, list[float]]] = {}
    for r in records:
        if r.get("type") != "train" or keys["clip"] not in r:
            continue
        epoch = max(1, math.ceil(float(r["epoch"]) - 1e-9))
        for name, key in keys.items():
            if key in r:
                sums.setdefault(epoch, {}).setdefault(name, []).append(float(r[key]))
    return {e: {k: sum(v) / len(v) for k, v in parts.items()} for e, parts in sorted(sums.items())}
