"""Source specs: what one dataset source is (``SourceSpec``) and how it is sampled and transformed.

The checks of each field sit beside it (``checked(...)`` or ``__post_init__``); the checks that
depend on the on-disk format (which keys it needs, which modality it reads) come from the format's
table entry in :mod:`unidual.data.formats`. The training recipe's per-source switches (mixing,
augmentation, loss weight, class balance, shared head; docs/training.md "Recipe") are fields here
too, all off by default; the trainer reads them (:mod:`unidual.train.build`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from unidual.data.augment import LEVEL_MAX
from unidual.data.errors import DataError
from unidual.data.formats import FORMATS
from unidual.data.labelspace import UNMATCHED
from unidual.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Plan
from unidual.pathways import MODALITIES
from unidual.yamlconfig import Checked, ConfigError, FieldError, at_least, checked, within
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


def _area_range(value: list[float]) -> str | None:
    ok = len(value) == 2 and 0 < value[0] <= value[1] <= 1
    return None if ok else f"must be [lo, hi] with 0 < lo <= hi <= 1, got {value!r}"


@dataclass
class RandAugmentSpec(Checked):
    """``transform.randaugment: {n, m}``: ``n`` ops drawn per clip, magnitude ``m`` on timm's 0-10 scale."""

    n: int = checked(dataclasses.MISSING, at_least(0))
    m: float = checked(dataclasses.MISSING, within(0, LEVEL_MAX))


@dataclass
class TransformSpec(Checked):
    """Protocol ``A`` / ``B`` (the paper's) or ``custom`` (``resize``, ``crop``, ``test_crops``).

    The recipe's training-only switches (off by default; test plans never see them): ``mixup`` /
    ``cutmix`` (Beta α, applied by the trainer inside this source's sub-batch with probability
    ``mix_prob``), ``randaugment``, ``scale`` (random-resized crop area range) and ``color_jitter``,
    each drawn once per clip and applied to every frame alike.
    """

    protocol: str = "A"
    resize: int | list[int] | None = None  # custom: shorter side, or [h, w]; None keeps the size
    crop: int | None = None  # custom: square crop side; None keeps the whole frame
    test_crops: int | None = None  # crops per test clip (1 centre, 3 along the longer side)
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    flip: bool = True  # random horizontal flip in training (turn off for left/right motion labels)
    max_side: int | None = None  # longer side frames are first scaled down to (None: no bound)
    mixup: float = checked(0.0, at_least(0))  # Beta alpha of mixup (0: off)
    cutmix: float = checked(0.0, at_least(0))  # Beta alpha of CutMix (0: off)
    mix_prob: float = checked(1.0, within(0, 1))  # probability that a sub-batch is mixed at all
    randaugment: RandAugmentSpec | None = None  # {n, m}; null: off
    scale: list[float] | None = checked(None, _area_range)  # random-resized crop area [lo, hi]; null: off
    color_jitter: float = checked(0.0, at_least(0))  # brightness / contrast / saturation strength (0: off)

    def __post_init__(self) -> None:
        if isinstance(self.randaugment, dict):
            self.randaugment = RandAugmentSpec(**self.randaugment)
        super().__post_init__()
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
        """The concrete resize/crop recipe for one modality and split (the augmentation switches: train only)."""
        train = split == "train"
        mean, std = tuple(self.mean), tuple(self.std)
        flip = self.flip and train
        plan = self._plan(modality, split, train, mean, std, flip)
        if self.max_side is not None:
            plan = dataclasses.replace(plan, max_side=self.max_side)
        if train and (self.scale or self.randaugment or self.color_jitter):
            ra = self.randaugment
            plan = dataclasses.replace(
                plan,
                scale=(float(self.scale[0]), float(self.scale[1])) if self.scale else None,
                randaugment=(int(ra.n), float(ra.m)) if ra is not None else None,
                color_jitter=float(self.color_jitter),
            )
        return plan

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
class SourceSpec(Checked):
    """One dataset source: its key, modality, on-disk format and how to sample/transform it.

    Recipe switches of the source (docs/training.md "Recipe"): ``loss_weight`` multiplies every
    loss term of its examples (independent of its sampling share ``data.weights``); ``balance``
    in [0, 1] draws classes with probability ∝ count^(1 - balance) (1: every class equally often);
    ``head: KEY`` trains source KEY's head with this source's examples, classes mapped by name
    (``head_unmatched``: a class KEY lacks is an ``error``, or its examples are dropped, counted).
    """

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
    loss_weight: float = checked(1.0, at_least(0))  # multiplies every loss term of this source's examples
    balance: float = checked(0.0, within(0, 1))  # class-balanced sampling inside the source (0: as drawn)
    head: str | None = None  # train source KEY's head (shared label space); null: this source's own head
    head_unmatched: Literal["error", "drop"] = "error"  # a class the head lacks: one-line error, or drop it

    def __post_init__(self) -> None:
        if isinstance(self.clip, dict):
            self.clip = ClipSpec.from_dict(self.clip)
        if isinstance(self.transform, dict):
            self.transform = TransformSpec.from_dict(self.transform)
        super().__post_init__()
        if self.head_unmatched not in UNMATCHED:
            raise FieldError("head_unmatched", f"must be one of {list(UNMATCHED)}, got {self.head_unmatched!r}")
        if self.head_unmatched != "error" and self.head is None:
            raise FieldError("head_unmatched", "applies to a shared head (head: KEY), which is not set")
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
