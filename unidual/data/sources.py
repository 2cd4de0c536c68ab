"""The dataset of one source and split (``SourceDataset``, ``build_dataset``).

What a source is lives in :mod:`unidual.data.specs`, how its files are found in
:mod:`unidual.data.formats` (one reader per on-disk format) and its label maps in
:mod:`unidual.data.labels`; their public names are importable from here too, as before
the split (``from unidual.data.sources import SourceSpec, build_dataset``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from unidual.data import archive as archive_mod
from unidual.data import sampling
from unidual.data.decode import VideoInfo, image_array, load_image, probe_video, read_clip
from unidual.data.errors import DataError
from unidual.data.formats import FORMATS, discover_classes, index_source
from unidual.data.labels import load_label_maps, read_class_names, save_label_maps
from unidual.data.listing import Entry, Index
from unidual.data.specs import ClipSpec, SourceSpec, TransformSpec
from unidual.data.transforms import apply_plan
from unidual.data.views import clip_views

__all__ = [
    "FORMATS",
    "ClipSpec",
    "Entry",
    "SourceDataset",
    "SourceSpec",
    "TransformSpec",
    "build_dataset",
    "discover_classes",
    "index_source",
    "load_label_maps",
    "read_class_names",
    "save_label_maps",
]

#: Raw frames carry no frame rate; a nominal one lets ``clip.fps`` still mean something.
RAWFRAME_FPS = 30.0


# --------------------------------------------------------------------------- dataset


class SourceDataset(Dataset):
    """Examples of one source and split as ``{"input", "label", "source", "index"}`` dicts."""

    def __init__(
        self,
        spec: SourceSpec,
        split: str,
        classes: Sequence[str] | None = None,
        index: Index | None = None,
        normalise: bool = True,
    ) -> None:
        self.spec = spec
        self.split = split
        if index is None:  # else listed already (e.g. by rank 0 of a multi-process job)
            index = index_source(spec, split, list(classes) if classes is not None else None)
        entries, names, missing = index
        self.classes: list[str] = list(names)
        self.entries = entries
        self.missing: list[str] = missing  # 'file:line: path' of listed files dropped (skip_missing)
        self.files: list[str] = [e.path for e in entries]
        self.labels: list[int] = [e.label for e in entries]
        self.plan = dataclasses.replace(spec.transform.plan(spec.modality, split), normalise=normalise)
        self._info: dict[int, VideoInfo] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"SourceDataset(key={self.spec.key!r}, split={self.split!r}, examples={len(self)}, classes={len(self.classes)})"

    def _rng(self) -> random.Random:
        # drawn from torch's generator so torch.manual_seed and DataLoader worker seeding apply
        return random.Random(int(torch.randint(0, 2**62, (1,)).item()))

    def read_image(self, index: int):
        path = self.entries[index].path
        if archive_mod.SEP in path:
            archive, member = path.split(archive_mod.SEP, 1)
            return load_image(archive_mod.open_archive(archive).read(member), name=path)
        return load_image(path)

    def video_info(self, index: int) -> VideoInfo:
        if index not in self._info:
            entry = self.entries[index]
            if entry.frames is not None:  # raw frames: the list gives the count, nothing to probe
                self._info[index] = VideoInfo(entry.frames, RAWFRAME_FPS, entry.frames / RAWFRAME_FPS, 0, 0)
            else:
                self._info[index] = probe_video(entry.path)
        return self._info[index]

    def read_rawframes(self, index: int, wanted: Sequence[int]) -> np.ndarray:
        """The frame files of native indices ``wanted`` (0-based) of a raw-frame folder, ``(T, H, W, 3)``."""
        folder = Path(self.entries[index].path)
        names = [self.spec.filename_tmpl.format(i + self.spec.start_index) for i in wanted]
        frames = [image_array(load_image(folder / name)) for name in names]
        if len({f.shape for f in frames}) != 1:
            raise DataError(f"{folder}: frame files differ in size")
        return np.stack(frames)

    def _window(self, index: int, info: VideoInfo) -> tuple[int, int]:
        """(first native frame, frame count) of the part of the video this example uses."""
        window = self.entries[index].window
        if window is None:
            return 0, info.num_frames
        first = min(int(round(window[0] * info.fps)), info.num_frames - 1)
        last = min(int(round(window[1] * info.fps)), info.num_frames)
        return first, max(last - first, 1)

    def clip_indices(
        self, index: int, rng: random.Random | None = None, info: VideoInfo | None = None
    ) -> list[list[int]]:
        """Native frame indices of the clip(s) this example reads (1 in training, num_clips in test)."""
        info = info or self.video_info(index)
        offset, count = self._window(index, info)
        c = self.spec.clip
        step = sampling.frame_step(c.stride, info.fps, c.fps)
        if self.split == "train":
            clips = [sampling.random_clip(count, c.frames, step, rng or self._rng(), c.loop)]
        else:
            clips = sampling.uniform_clips(count, c.frames, step, c.num_clips, c.loop)
        return [[offset + i for i in clip] for clip in clips]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for {self!r}")
        rng = self._rng()
        if self.spec.modality == "image":
            views = apply_plan(image_array(self.read_image(index)), self.plan, rng)
            x = views[0][0]  # (3, H, W)
        else:
            clips: list[list[int]] = []

            def choose(info: VideoInfo) -> list[int]:
                self._info[index] = info
                clips.extend(self.clip_indices(index, rng, info))
                return sorted(set(sampling.flatten(clips)))

            frames: np.ndarray | list[np.ndarray]
            if self.entries[index].frames is not None:  # raw frames: one image file per index
                wanted = choose(self.video_info(index))
                frames = self.read_rawframes(index, wanted)
            else:  # a video seen for the first time is probed and read through one open
                _, wanted, frames = read_clip(self.entries[index].path, choose, self._info.get(index), stacked=False)
            stacked = clip_views(dict(zip(wanted, frames)), clips, self.plan, rng)  # (V, 3, T, H, W)
            x = stacked[0] if self.split == "train" else stacked
        return {"input": x, "label": self.labels[index], "source": self.spec.key, "index": index}


def build_dataset(
    spec: SourceSpec | dict[str, Any],
    split: str,
    classes: Sequence[str] | None = None,
    index: Index | None = None,
    normalise: bool = True,
) -> SourceDataset:
    """The dataset of one source and split; ``classes`` pins the label map (evaluation reuses the run's);
    ``index`` (from :func:`index_source`) skips listing the files again; ``normalise=False``: uint8 inputs
    (normalise with :func:`unidual.data.transforms.normalise_batch` where they are used)."""
    if isinstance(spec, dict):
        spec = SourceSpec.from_dict(spec)
    return SourceDataset(spec, split, classes, index, normalise)
