"""Compositional labels, ``"<class> <motion>"``: which part of a label a model gets right.

CIFAR-motion (``unidual data build-motion``) labels a video by its photo's class and its motion.
When a joint model does badly on video, the parts tell whether it missed the motion (which only
videos carry) or the appearance (which images can teach). The study's ``study-parts`` command
scores the parts on the test set; ``run.label_parts`` logs them during training.
"""

from __future__ import annotations

from collections.abc import Sequence

PARTS = ("class", "motion")


def split_label(name: str) -> tuple[str, str]:
    """``"automobile zoom_in"`` -> ``("automobile", "zoom_in")``: the appearance part and the motion part."""
    head, sep, tail = name.rpartition(" ")
    if not sep or not head or not tail:
        raise ValueError(f"label {name!r} is not '<class> <motion>'")
    return head, tail


def part_indices(classes: Sequence[str]) -> dict[str, list[int]] | None:
    """Per part, each class's part as an index (equal index: equal part); None if a name has no two parts."""
    try:
        split = [split_label(c) for c in classes]
    except ValueError:
        return None
    out: dict[str, list[int]] = {}
    for i, part in enumerate(PARTS):
        values = sorted({s[i] for s in split})
        out[part] = [values.index(s[i]) for s in split]
    return out
