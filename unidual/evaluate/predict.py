"""`unidual predict CHECKPOINT FILE_OR_DIR...`: top-k class names for image and video files.

Each file's modality is decided by its extension, and for an unknown (or
ambiguous, e.g. ``.gif``) extension by trying Pillow and then PyAV. The file is
preprocessed exactly like the test split of the run's first source of that
modality (same resize/crop/normalisation, same number of uniform clips), runs
through that modality's pathway, and every head on the pathway is reported with
the label map of its source. Multi-view scores are averaged softmax
probabilities, as in `unidual eval`. Unreadable files are reported and skipped;
the exit status is 1 if any file failed.

The work per file is bounded: when the run's test transform keeps the native size
(``protocol: custom`` without ``resize``/``crop``), frames whose longer side is past
``--max-side`` (default :data:`MAX_SIDE`) are downscaled first, so one small file
declaring a huge canvas cannot take minutes and gigabytes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from unidual.checkpoint import load_model
from unidual.data import DataError, SourceSpec
from unidual.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from unidual.data.views import file_views
from unidual.evaluate import metrics as M
from unidual.pathways import AUX_SUFFIX, is_aux_name

MAX_SIDE = 1024  # longer side of a frame when the run's test transform keeps the native size


@dataclass
class Prediction:
    """Top-k result for one file; ``error`` is set (and ``top`` empty) if it could not be read."""

    path: str
    modality: str | None = None
    top: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # source key -> [(class, prob)]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "modality": self.modality,
            "error": self.error,
            "top": {k: [{"class": c, "score": s} for c, s in v] for k, v in self.top.items()},
        }


# --------------------------------------------------------------------------- reading files


def detect_modality(path: str | Path) -> str:
    """ "image" or "video" from the extension, else by trying Pillow then PyAV; DataError if neither."""
    suffix = Path(path).suffix.lower()
    image_ext, video_ext = suffix in IMAGE_EXTENSIONS, suffix in VIDEO_EXTENSIONS
    if image_ext != video_ext:
        return "image" if image_ext else "video"
    if _opens_with_pillow(path) and not _is_animated(path):
        return "image"
    if _opens_with_pyav(path):
        return "video"
    raise DataError(f"{path}: neither an image Pillow can read nor a video PyAV can decode")


def _opens_with_pillow(path: str | Path) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:
        return False


def _is_animated(path: str | Path) -> bool:
    with Image.open(path) as img:
        return getattr(img, "n_frames", 1) > 1


def _opens_with_pyav(path: str | Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except Exception:
        return False


def default_spec(modality: str, frames: int = 8) -> dict[str, Any]:
    """Test-time settings used when the checkpoint's config has no source of that modality (protocol A)."""
    return {
        "key": "_",
        "modality": modality,
        "format": "folder",
        "root": ".",
        "clip": {"frames": frames, "num_clips": 10},
        "transform": {"protocol": "A"},
    }


def spec_for(payload: Mapping[str, Any], modality: str) -> Any:
    """SourceSpec of the run's first source of ``modality`` (its test transform and clip sampling)."""
    for src in (payload.get("config") or {}).get("sources", []):
        if src.get("modality") == modality:  # converted weights store the recipe without a root
            return SourceSpec.from_dict({"root": ".", **src})
    frames = int(payload.get("model_spec", {}).get("options", {}).get("frames") or 8)
    return SourceSpec.from_dict(default_spec(modality, frames))


def load_views(path: str | Path, modality: str, spec: Any, max_side: int = MAX_SIDE) -> Tensor:
    """A file as test views, its work bounded by ``max_side`` (see :func:`unidual.data.views.file_views`)."""
    return file_views(path, modality, spec, max_side)


def expand_inputs(items: Iterable[str | Path], passed_over: list[Path] | None = None) -> list[Path]:
    """Files as given; folders walked recursively (sorted) for image/video files only.

    A folder's other files (README.md, .DS_Store, Thumbs.db, ...) are appended to ``passed_over``
    for one note; a file named explicitly is always taken, so an unreadable one is an error.
    """

    media = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if not p.is_dir():
            out.append(p)
            continue
        for f in sorted(f for f in p.rglob("*") if f.is_file()):
            if f.suffix.lower() in media and not f.name.startswith("."):
                out.append(f)
            elif passed_over is not None:
                passed_over.append(f)
    return out


def passed_over_note(files: Sequence[Path], command: str) -> str:
    """One line: how many non-media files the folders held, and the first few names."""
    names = ", ".join(f.name for f in files[:3]) + (", ..." if len(files) > 3 else "")
    return (
        f"unidual {command}: passed over {len(files)} file(s) in the given folder(s) without an "
        f"image/video extension ({names})"
    )


# --------------------------------------------------------------------------- predicting


def label_maps(payload: Mapping[str, Any]) -> dict[str, list[str]]:
    return {k: list(v["classes"]) for k, v in payload.get("sources", {}).items()}


def _top(scores: Tensor, classes: Sequence[str], k: int) -> list[tuple[str, float]]:
    values, idx = scores.topk(min(k, scores.numel()))
    return [(classes[i] if i < len(classes) else str(i), float(v)) for v, i in zip(values.tolist(), idx.tolist())]


#: Pixels (frames x height x width, summed over views) one forward pass takes: a file's views run in
#: chunks of this size, so ten 1024-px clips of a native-size run are not one batch of activations.
FORWARD_PIXELS = 1 << 22


@torch.no_grad()
def predict_views(
    model: nn.Module, views: Tensor, modality: str, device: str | torch.device = "cpu"
) -> dict[str, Tensor]:
    """Logits per head for a flat batch of views, run on the pathway of ``modality`` in chunks of
    at most :data:`FORWARD_PIXELS` (at least one view per pass)."""
    pathway = modality if modality in getattr(model, "pathways", (modality,)) else None
    per_view = max(1, views[0].numel() // views.shape[1]) if len(views) else 1
    step = max(1, FORWARD_PIXELS // per_view)
    parts: dict[str, list[Tensor]] = {}
    for chunk in views.split(step):
        out = model(chunk.to(device), pathway=pathway) if pathway else model(chunk.to(device))
        for name, logits in out.items():
            parts.setdefault(name, []).append(logits.float().cpu())
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def _run_group(
    model: nn.Module,
    modality: str,
    group: list[tuple[Prediction, Tensor]],
    maps: Mapping[str, list[str]],
    topk: int,
    device: str | torch.device,
) -> None:
    """One forward pass for files of ``modality`` and the same view shape; fills each ``Prediction.top``."""
    counts = [views.shape[0] for _, views in group]
    logits = predict_views(model, torch.cat([views for _, views in group]), modality, device)
    for head, values in logits.items():
        key = head[: -len(AUX_SUFFIX)] if is_aux_name(head) else head
        for (result, _), part in zip(group, values.split(counts)):
            probs = M.average_view_scores(part.unsqueeze(0))[0]
            result.top[head] = _top(probs, maps.get(key, []), topk)


def predict_files(
    model: nn.Module,
    payload: Mapping[str, Any],
    paths: Iterable[str | Path],
    *,
    topk: int = 5,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = False,
    max_side: int = MAX_SIDE,
) -> list[Prediction]:
    """Top-k per head for every file (in order); unreadable files come back with ``error`` set.

    Files are read ``batch_size`` at a time and those sharing modality and view
    shape go through the network together.
    """

    model.eval().to(device)
    maps = label_maps(payload)
    specs: dict[str, Any] = {}
    files = list(paths)
    results = [Prediction(str(p)) for p in files]
    with tqdm(total=len(files), desc="predict", unit="file", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(files), max(1, batch_size)):
            groups: dict[tuple[str, tuple[int, ...]], list[tuple[Prediction, Tensor]]] = {}
            for path, result in zip(files[start : start + batch_size], results[start : start + batch_size]):
                try:
                    modality = result.modality = detect_modality(path)
                    spec = specs.setdefault(modality, spec_for(payload, modality))
                    views = load_views(path, modality, spec, max_side)
                except Exception as exc:  # one unreadable file is reported, never stops the rest
                    result.error = f"{type(exc).__name__}: {exc}"
                    continue
                groups.setdefault((modality, tuple(views.shape[1:])), []).append((result, views))
            for (modality, _), group in groups.items():
                _run_group(model, modality, group, maps, topk, device)
            bar.update(min(batch_size, len(files) - start))
    return results


def predict(
    checkpoint: str | Path,
    paths: Iterable[str | Path],
    *,
    topk: int = 5,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> list[Prediction]:
    """Python API: ``predict("run/best.pt", ["cat.jpg", "clips/"])``."""
    model, payload = load_model(checkpoint, deploy=True)
    return predict_files(model, payload, expand_inputs(paths), topk=topk, batch_size=batch_size, device=device)
