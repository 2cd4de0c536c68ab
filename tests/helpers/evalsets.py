"""Seeded in-memory test sets and a slim model, identical in every process (sharded-evaluation tests)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils.data import Dataset

from helpers.nets import randomise_bn

HEADS = {"clips": 3, "imgs": 4, "one": 4, "none": 3}
MODALITIES = {"clips": "video", "imgs": "image", "one": "image", "none": "image"}
BATCH = 6  # views per forward: 2 videos of 3 clips, or 6 images, per loader batch


class Synthetic(Dataset):
    """``n`` seeded examples (identical in every process); ``bad`` indices raise like unreadable files."""

    def __init__(self, n: int, modality: str, classes: int, seed: int, bad: tuple[int, ...] = ()) -> None:
        g = torch.Generator().manual_seed(seed)
        shape = (3, 3, 4, 16, 16) if modality == "video" else (3, 16, 16)  # video: 3 clips x 1 crop
        self.inputs = torch.randn(n, *shape, generator=g)
        self.labels = torch.randint(0, classes, (n,), generator=g).tolist()
        self.classes = [f"c{i}" for i in range(classes)]
        self.files = [f"{modality}{i}.file" for i in range(n)]
        self.spec = SimpleNamespace(clip=SimpleNamespace(num_clips=3), transform=SimpleNamespace(test_crops=1))
        self.bad = set(bad)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i in self.bad:
            raise OSError(f"cannot decode {self.files[i]}")
        return {"input": self.inputs[i], "label": self.labels[i], "index": i}


def datasets() -> dict[str, Synthetic]:
    """5 videos (one unreadable) and 7 images: uneven over 2 ranks; 1 image: fewer than the ranks; 0: none."""
    return {
        "clips": Synthetic(5, "video", 3, seed=1, bad=(2,)),
        "imgs": Synthetic(7, "image", 4, seed=2, bad=(6,)),
        "one": Synthetic(1, "image", 4, seed=3),
        "none": Synthetic(0, "image", 3, seed=4),
    }


def tiny_model() -> torch.nn.Module:
    from unidual.models import create_model

    torch.manual_seed(0)
    model = create_model("unidual_aux", depth=10, width=0.125, heads=HEADS, modalities=MODALITIES, frames=4)
    return randomise_bn(model).eval()


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def same_metrics(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)
