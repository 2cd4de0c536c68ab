"""The on-disk formats a source can have: one reader function and one table entry each.

Adding a format is a function ``read(spec, split, classes) -> Index`` (see
:mod:`unidual.data.readers`, :mod:`unidual.data.splitfiles`) and an entry in :data:`FORMATS`
saying which source keys it needs and reads. :func:`index_source` is the one place that
picks the reader, so label maps and missing files behave the same in every format.

Formats (``SourceSpec.format``; docs/data.md has the layouts):

- ``folder``: ``root/<split>/<class>/<file>`` (ImageFolder layout, images or videos);
  ``root`` may be a ``.tar``/``.tar.gz`` archive for images.
- ``list``: a text file of ``path label`` lines (label = class name or index), paths
  relative to ``root`` (a folder or an archive).
- ``kinetics_csv``: ``label,youtube_id,time_start,time_end[,split]`` with a header;
  files are found anywhere under ``root`` as ``{id}_{start:06d}_{end:06d}.<ext>``
  (trimmed) or ``{id}.<ext>`` (untrimmed: the row's time window is used).
- ``mmaction_list``: ``relative/path.mp4 label`` lines with integer labels.
- ``mmaction_rawframes``: ``frame_dir total_frames label`` lines; each ``frame_dir`` holds
  the extracted frames ``img_00001.jpg``, ... (mmaction2's ``RawframeDataset``).
- ``ucf101``, ``hmdb51``: the benchmarks' official split files (``splits`` folder, ``split`` number).
- ``ssv2``: Something-Something V2's ``labels.json`` and annotation JSONs.

Every format takes optional ``train_root`` / ``test_root`` (default ``root``): mmaction2
keeps one folder per split (its ``data_prefix``) with list paths relative to it. The list
formats drop entries whose file is absent when the index is built if ``skip_missing`` is
set, and fail naming them otherwise (``SourceDataset.missing`` keeps the dropped ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unidual.data.errors import DataError
from unidual.data.labels import read_class_names
from unidual.data.listing import Index
from unidual.data.readers import (
    read_folder,
    read_kinetics_csv,
    read_list,
    read_mmaction_list,
    read_mmaction_rawframes,
)
from unidual.data.splitfiles import read_hmdb51, read_ssv2, read_ucf101

if TYPE_CHECKING:
    from unidual.data.specs import SourceSpec

Reader = Callable[["SourceSpec", str, "list[str] | None"], Index]
#: Source keys that only some formats read; a format refuses the ones it does not read.
FORMAT_KEYS = ("train", "test", "splits", "split", "labels")
NUMBERED = ("splits", "split")  # a benchmark's folder of split files and the official split number


@dataclass(frozen=True)
class Format:
    """One on-disk format: its reader and the source keys it needs."""

    read: Reader
    needs: tuple[str, ...] = ()  # keys that must be set
    reads: tuple[str, ...] = ("train", "test")  # of FORMAT_KEYS, the ones it reads (needs included)
    modality: str | None = None  # the one modality it holds (None: image or video)
    own_label_map: bool = False  # the label map comes from the format's own files, not the training split
    named_splits: bool = True  # a split exists only when its train:/test: key names it (else: always)

    def check(self, spec: SourceSpec) -> None:
        """Refuse a spec this format cannot read: a needed key unset, a key it ignores set, the wrong modality."""
        name = spec.format
        if self.modality is not None and spec.modality != self.modality:
            raise DataError(
                f"source {spec.key!r}: format {name} is a {self.modality} format (modality: {self.modality})"
            )
        unset = [k for k in self.needs if getattr(spec, k) is None]
        if unset:
            raise DataError(f"source {spec.key!r}: format {name} needs {', '.join(unset)} (docs/data.md)")
        ignored = [k for k in FORMAT_KEYS if k not in self.reads and getattr(spec, k) is not None]
        if ignored:
            reads = ", ".join(self.reads) or "none of them"
            raise DataError(f"source {spec.key!r}: format {name} does not read {', '.join(ignored)} (it reads {reads})")

    def declares(self, spec: SourceSpec, split: str) -> bool:
        """Whether the spec has this split: named by its ``train:``/``test:`` key, or always there."""
        return not self.named_splits or getattr(spec, split) is not None


FORMATS: dict[str, Format] = {
    "folder": Format(read_folder, named_splits=False),  # train:/test: default to the train/ and test/ folders
    "list": Format(read_list),
    "kinetics_csv": Format(read_kinetics_csv),
    "mmaction_list": Format(read_mmaction_list),
    "mmaction_rawframes": Format(read_mmaction_rawframes, modality="video"),
    "ucf101": Format(read_ucf101, NUMBERED, NUMBERED, "video", own_label_map=True, named_splits=False),
    "hmdb51": Format(read_hmdb51, NUMBERED, NUMBERED, "video", own_label_map=True, named_splits=False),
    "ssv2": Format(read_ssv2, ("labels",), ("train", "test", "labels"), "video", own_label_map=True),
}


def discover_classes(spec: SourceSpec) -> list[str]:
    """The label map a source implies: given, else from its training split."""
    if spec.classes is not None:
        return read_class_names(spec.classes)
    split = "train" if FORMATS[spec.format].declares(spec, "train") else "test"
    return index_source(spec, split, None)[1]


def index_source(spec: SourceSpec, split: str, classes: list[str] | None) -> Index:
    """Every example of one split, labelled against ``classes`` (discovered when None), and the missing files."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    fmt = FORMATS[spec.format]
    if classes is None and spec.classes is not None:
        classes = read_class_names(spec.classes)
    if classes is None and split == "test" and not fmt.own_label_map and fmt.declares(spec, "train"):
        classes = discover_classes(spec)  # the test split uses the training split's label map
    return fmt.read(spec, split, classes)
