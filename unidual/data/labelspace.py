"""A shared label space: one source's classes mapped by name onto another source's head.

``head: KEY`` in a source makes its examples train source ``KEY``'s head (OmniSource: web
images of Kinetics' classes teaching the Kinetics head). Class names match when they are equal
after case folding and treating runs of spaces, ``_``, ``-`` and ``.`` as one separator
(``"Playing_Guitar"`` == ``"playing guitar"``). A source class with no match is an error listing
every unmatched name on one line, or, with ``head_unmatched: drop``, its examples are left out
and counted. :class:`Relabelled` is the source's dataset seen through the mapping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from unidual.data.errors import DataError

UNMATCHED = ("error", "drop")
_SEPARATORS = re.compile(r"[\s_.\-]+")


def class_key(name: str) -> str:
    """The form two class names are compared in: case-folded, separators as one space, trimmed."""
    return _SEPARATORS.sub(" ", name.casefold()).strip()


@dataclass(frozen=True)
class LabelMap:
    """Source class ``i`` -> head class ``index[i]`` (-1: dropped, ``head_unmatched: drop``)."""

    source: str
    head: str
    index: tuple[int, ...]
    head_classes: tuple[str, ...]
    dropped: tuple[str, ...] = field(default=())  # source classes without a head class

    def __call__(self, label: int) -> int:
        return self.index[label]


def map_classes(
    source_classes: Sequence[str],
    head_classes: Sequence[str],
    *,
    source: str,
    head: str,
    unmatched: str = "error",
) -> LabelMap:
    """Map ``source``'s class names onto ``head``'s by :func:`class_key`; unmatched: error (one line) or drop."""
    if unmatched not in UNMATCHED:
        raise DataError(f"source {source!r}: head_unmatched must be one of {UNMATCHED}, got {unmatched!r}")
    by_key: dict[str, int] = {}
    for i, name in enumerate(head_classes):
        key = class_key(name)
        if key in by_key:
            raise DataError(
                f"source {source!r}: head {head!r} has classes {head_classes[by_key[key]]!r} and {name!r} "
                "that differ only in case or separators; class names must stay distinct"
            )
        by_key[key] = i
    index = [by_key.get(class_key(name), -1) for name in source_classes]
    missing = [name for name, j in zip(source_classes, index) if j < 0]
    if missing and unmatched == "error":
        raise DataError(
            f"source {source!r}: {len(missing)} of its {len(source_classes)} classes match no class of head "
            f"{head!r} ({len(head_classes)} classes; case and separators ignored): "
            f"{', '.join(repr(m) for m in missing)}; rename them or set head_unmatched: drop"
        )
    if len(missing) == len(source_classes):
        raise DataError(f"source {source!r}: none of its classes is a class of head {head!r}; nothing to train")
    return LabelMap(source, head, tuple(index), tuple(head_classes), tuple(missing))


class Relabelled(Dataset):
    """``dataset`` with labels in the head's classes; examples of dropped classes left out (``dropped_examples``).

    Keeps the attributes the trainer reads (``classes``, ``labels``, ``files``); others come
    from the wrapped dataset. Items keep their position in this view as ``"index"``.
    """

    def __init__(self, dataset: Any, label_map: LabelMap) -> None:
        self.dataset = dataset
        self.label_map = label_map
        labels = list(dataset.labels)
        self.indices = [i for i, y in enumerate(labels) if label_map(y) >= 0]
        self.labels = [label_map(labels[i]) for i in self.indices]
        self.classes = list(label_map.head_classes)
        self.dropped_examples = len(labels) - len(self.indices)
        files = getattr(dataset, "files", None)
        if files is not None:
            self.files = [files[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.dataset[self.indices[i]])
        item["label"] = self.label_map(item["label"])
        item["index"] = i
        return item

    def __getattr__(self, name: str) -> Any:  # spec, plan, missing, ... of the wrapped dataset
        if name in ("dataset", "label_map"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
