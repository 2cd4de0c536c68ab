"""Source specs: what one dataset source is (``SourceSpec``) and how it is sampled and transformed.

The checks of each field sit beside it (``__post_init__``); the checks that depend on the
on-disk format (which keys it needs, which modality it reads) come from the format's table
entry in :mod:`unidual.data.formats`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from unidual.data.errors import DataError
from unidual.data.formats import FORMATS
from unidual.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Plan
from unidual.pathways import MODALITIES
from unidual.yamlconfig import ConfigError
from unidual.yamlconfig import from_dict as build_dataclass


def _from_dict(cls, d: Any, where: str):
    """Typed build through the project's one config loader; its errors become DataError (the data floor's)."""
    try:
        return build_dataclass(cls, d, where)
    except ConfigError as exc:
        raise DataError(str(exc)) from None


@dataclass
class ClipSpec:
    """How clips are cut from a video (see ``unidual.data.sampling``)."""

    frames: int = 8
    stride: int = 1
    fps: float | None = None  # sample at this rate (times stride) instead of every native frame
    num_clips: int = 10  # clips per video at test time
    loop: bool = True  # short videos: loop (True) or pad with the last frame (False)

    def __post_init__(self) -> None:
        for name in ("frames", "stride", "num_clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataError(f"clip.{name}: must be an integer >= 1, got {value!r}")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and self.fps > 0):
            raise DataError(f"clip.fps: must be > 0 or null, got {self.fps!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipSpec:
        return _from_dict(cls, d, "clip")


@dataclass
class TransformSpec:
    """Protocol ``A`` / ``B`` (the paper's) or ``custom`` (``resize``, ``crop``, ``test_crops``)."""

    protocol: str = "A"
    resize: int | list[int] | None = None  # custom: shorter side, or [h, w]; None keeps the size
    crop: int | None = None  # custom: square crop side; None keeps the whole frame
    test_crops: int | None = None  # crops per test clip (1 centre, 3 along the longer side)
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    flip: bool = True  # random horizontal flip in training (turn off for left/right motion labels)
    max_side: int | None = None  # longer side frames are first scaled down to (None: no bound)

    def __post_init__(self) -> None:
        if self.protocol not in ("A", "B", "custom"):
            raise DataError(f"transform.protocol: must be 'A', 'B' or 'custom', got {self.protocol!r}")
        presets: dict[str, tuple[int | list[int], int]] = {"A": ([128, 171], 112), "B": (256, 224)}
        if self.protocol in presets:
            resize, crop = presets[self.protocol]
            given = (
                None
                if self.resize is None
                else (list(self.resize) if isinstance(self.resize, (list, tuple)) else self.resize)
            )
            if given not in (None, resize) or self.crop not in (None, crop):
                raise DataError(
                    f"transform: resize/crop are fixed by protocol {self.protocol} "
                    f"({resize}, {crop}); use protocol: custom for other sizes"
                )
            self.resize, self.crop = resize, crop
        if self.test_crops is None:
            self.test_crops = 3 if self.protocol == "B" else 1
        if self.test_crops not in (1, 3):
            raise DataError(f"transform.test_crops: must be 1 or 3, got {self.test_crops!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise DataError("transform.mean/std: need three values each, std > 0")
        if self.max_side is not None and (
            isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or self.max_side < 1
        ):
            raise DataError(f"transform.max_side: must be a positive integer or null, got {self.max_side!r}")
        self.mean, self.std = [float(v) for v in self.mean], [float(v) for v in self.std]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransformSpec:
        return _from_dict(cls, d, "transform")

    def plan(self, modality: str, split: str) -> Plan:
        """The concrete resize/crop recipe for one modality and split."""
        train = split == "train"
        mean, std = tuple(self.mean), tuple(self.std)
        flip = self.flip and train
        if self.max_side is not None:
            return dataclasses.replace(self._plan(modality, split, train, mean, std, flip), max_side=self.max_side)
        return self._plan(modality, split, train, mean, std, flip)

    def _plan(self, modality: str, split: str, train: bool, mean: tuple, std: tuple, flip: bool) -> Plan:
        if self.protocol == "B":
            if train:
                return Plan(resize=None, scales=(256, 320), crop=224, random_crop=True, flip=flip, mean=mean, std=std)
            if modality == "video" and self.test_crops == 3:
                return Plan(resize=(256,), crop=256, crops=3, mean=mean, std=std)
            return Plan(resize=(256,), crop=224, crops=1, mean=mean, std=std)
        size = None if self.resize is None else tuple([self.resize] if isinstance(self.resize, int) else self.resize)
        crops = self.test_crops if (modality == "video" and not train) else 1
        return Plan(
            resize=size,
            crop=self.crop,
            crops=crops or 1,
            random_crop=train and self.crop is not None,
            flip=flip,
            mean=mean,
            std=std,
        )


@dataclass
class SourceSpec:
    """One dataset source: its key, modality, on-disk format and how to sample/transform it."""

    key: str
    modality: str
    format: str
    root: str
    train: str | None = None
    test: str | None = None
    clip: ClipSpec = field(default_factory=ClipSpec)
    transform: TransformSpec = field(default_factory=TransformSpec)
    classes: list[str] | str | None = None  # label map: a list or a JSON/text file; None: discovered
    skip_missing: bool = False  # list formats: drop entries whose file is missing instead of failing
    train_root: str | None = None  # per-split data folders (mmaction2's data_prefix); default: root
    test_root: str | None = None
    filename_tmpl: str = "img_{:05d}.jpg"  # mmaction_rawframes: frame file names (mmaction2's default)
    start_index: int = 1  # mmaction_rawframes: number of the first frame file
    splits: str | None = None  # ucf101 / hmdb51: the folder of the benchmark's split files
    split: int | None = None  # ucf101 / hmdb51: which official split (1, 2, 3)
    labels: str | None = None  # ssv2: labels.json (template -> class id)

    def __post_init__(self) -> None:
        if isinstance(self.clip, dict):
            self.clip = ClipSpec.from_dict(self.clip)
        if isinstance(self.transform, dict):
            self.transform = TransformSpec.from_dict(self.transform)
        if not isinstance(self.key, str) or not self.key:
            raise DataError(f"source key must be a non-empty string, got {self.key!r}")
        if self.modality not in MODALITIES:
            raise DataError(f"source {self.key!r}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.format not in FORMATS:
            raise DataError(f"source {self.key!r}: format must be one of {tuple(FORMATS)}, got {self.format!r}")
        self.root = str(self.root)
        self.train_root = None if self.train_root is None else str(self.train_root)
        self.test_root = None if self.test_root is None else str(self.test_root)
        if self.split is not None and (
            isinstance(self.split, bool) or not isinstance(self.split, int) or self.split < 1
        ):
            raise DataError(
                f"source {self.key!r}: split must be an official split number (1, 2, ...), got {self.split!r}"
            )
        FORMATS[self.format].check(self)
        try:
            self.filename_tmpl.format(self.start_index)
        except (IndexError, KeyError, ValueError) as exc:
            raise DataError(
                f"source {self.key!r}: filename_tmpl {self.filename_tmpl!r} does not format a frame number ({exc})"
            ) from exc

    def root_for(self, split: str) -> str:
        """The data folder (or archive) of one split: ``train_root`` / ``test_root``, else ``root``."""
        specific = self.train_root if split == "train" else self.test_root
        return specific if specific is not None else self.root

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceSpec:
        """Build from a plain (YAML) dict; unknown keys, wrong types and missing keys are rejected."""
        where = f"source {d.get('key')!r}" if isinstance(d, dict) else "source"
        return _from_dict(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def split_ref(self, split: str) -> str:
        ref = self.train if split == "train" else self.test
        if ref is None:
            if self.format == "folder":
                # a per-split root holds the class folders itself
                own_root = self.train_root if split == "train" else self.test_root
                return "." if own_root is not None else split
            raise DataError(f"source {self.key!r}: no {split!r} file given (set '{split}:' in the source)")
        return ref
