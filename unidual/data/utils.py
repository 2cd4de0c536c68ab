"""Small helpers that training, evaluation and the study all need from a dataset, written once."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from torch.utils.data import Dataset

SKIPPED = "skipped"  # key of an item that could not be read: {SKIPPED: (path, reason), "source", "index"}


class SizedDataset(Protocol):
    """A map-style dataset with a length, as every dataset here is (torch's ``Dataset`` declares no ``__len__``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def example_path(dataset: Any, index: int, key: str | None = None) -> str:
    """The file behind example ``index`` (for messages), or ``key[index]`` when the dataset has no files."""
    files = getattr(dataset, "files", None)
    if files is not None and 0 <= index < len(files):
        return str(files[index])
    return f"{key or 'example'}[{index}]"


def read_or_skip(dataset: Any, index: int, key: str | None = None) -> dict[str, Any]:
    """``dataset[index]`` with its file under ``"path"`` (so a batching error can name it), or a skip
    marker naming the file and the error: one bad file never stops a run."""
    try:
        example = dataset[index]
    except Exception as exc:
        return {
            SKIPPED: (example_path(dataset, index, key), f"{type(exc).__name__}: {exc}"),
            "source": key,
            "index": index,
        }
    if isinstance(example, dict) and getattr(dataset, "files", None) is not None:
        example = {**example, "path": example_path(dataset, index, key)}
    return example


class Spread(Dataset):
    """``count`` examples spread evenly over ``dataset``, so a class-ordered folder keeps every class.

    Attributes of the wrapped dataset (classes, spec, ...) stay readable; ``files`` is the subset's.
    """

    def __init__(self, dataset: Any, count: int) -> None:
        self.dataset = dataset
        n = len(dataset)
        self.indices = sorted({int(i) for i in np.linspace(0, n - 1, num=min(count, n))}) if n else []
        files = getattr(dataset, "files", None)
        if files is not None:
            self.files = [files[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __getattr__(self, name: str) -> Any:  # classes, spec, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
