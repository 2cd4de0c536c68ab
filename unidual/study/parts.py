"""Which half of a compositional label a model gets right: the appearance ("cat") or the motion ("left").

CIFAR-motion labels are ``"<CIFAR class> <motion>"``. When a joint model's video@1 is low, this
tells whether it failed to learn the motion (the part only videos carry) or the appearance
(the part the images can teach). Run on a finished study:

    unidual study-parts configs/cpu/study/study.yaml --seeds 0 1 2

It re-evaluates the final weights of every finished run that was evaluated on ``--source`` (10 clips per video,
the study's eval settings) and prints one Markdown table: per run and seed, video@1 and the
share of test videos whose predicted label has the right class part / the right motion part,
then the median per model over the seeds. (The command lives in :mod:`unidual.study.commands`.)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from unidual.data.labelparts import split_label

__all__ = ["part_accuracy", "split_label"]


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
