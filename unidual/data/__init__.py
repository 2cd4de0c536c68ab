"""Data: PyAV decoding, clip sampling, the paper's transforms, dataset sources, mixing, built-ins.

See docs/data.md. Submodules are imported lazily so ``import unidual.data`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from unidual.data.errors import DataError
from unidual.data.paths import shared_data_dir

_EXPORTS = {
    "ClipSpec": "specs",
    "TransformSpec": "specs",
    "SourceSpec": "specs",
    "SourceDataset": "sources",
    "build_dataset": "sources",
    "FORMATS": "formats",
    "save_label_maps": "labels",
    "load_label_maps": "labels",
    "read_class_names": "labels",
    "IMAGENET_MEAN": "transforms",
    "IMAGENET_STD": "transforms",
    "load_image": "decode",
    "probe_video": "decode",
    "read_frames": "decode",
    "read_clip": "decode",
    "VideoInfo": "decode",
    "MixedSampler": "mixing",
    "MixedDataset": "mixing",
    "collate_mixed": "mixing",
    "MixedBatch": "mixing",
    "SubBatch": "mixing",
    "make_default_dataset": "builtin",
    "build_motion_dataset": "motion",
    "check_dataset": "check",
}

__all__ = ["DataError", "shared_data_dir", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"unidual.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'unidual.data' has no attribute {name!r}")
