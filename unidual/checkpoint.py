"""Checkpoints that are never lost and never execute code.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts) so it
loads with ``torch.load(weights_only=True)``. It is written to a temporary file
in the same folder and renamed over the target, so a crash mid-write leaves the
previous checkpoint intact.

Layout of the dict (``FORMAT`` version 1)::

    format       "unidual-checkpoint/1"
    model        state_dict
    model_spec   {"name", "depth", "width", "heads": {key: n}, "options": {...}}
                 -> create_model(name, depth=, width=, heads=, **options)
    sources      {key: {"modality": "image"|"video", "classes": [name, ...]}}; a source trained
                 with ``head: KEY`` (shared label space) has no head of its own and adds
                 "head": KEY (its classes map onto KEY's by name, unidual.data.labelspace)
    config       the resolved run config (plain dict), optional
    train_state  optimiser / scheduler / sampler / RNG / epoch / step, optional
    metrics      last validation metrics, optional
    ema          with run.ema_decay only: {"decay", "buffers", "updates", "model": state_dict}, the
                 moving average of the weights (same keys as "model"; unidual.train.ema)
    weights      with "ema" only: "ema" | "raw", the better at the last validation -- what
                 load_model(weights=None), and so eval/predict/export without --weights, use
"""

from __future__ import annotations

import errno
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unidual.models import ImageVideoNet, create_model

FORMAT = "unidual-checkpoint/1"
LAST = "last.pt"
BEST = "best.pt"
TMP_SUFFIX = ".tmp"
#: A checkpoint's zip members may declare at most this many bytes per byte on disk (torch.save stores
#: them uncompressed, ratio 1; deflated float weights stay near 1; zeros deflate ~1000:1) ...
MAX_INFLATION = 4
#: ... or this many bytes in all, whichever is more (a small file full of zero buffers stays loadable).
INFLATION_FLOOR = 64 << 20


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or not a unidual checkpoint."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, **payload}
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise CheckpointWriteError(f"{path}: cannot write the checkpoint ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):  # torch wraps a failed write in a RuntimeError
            kept = "the previous checkpoint is kept" if path.exists() else "no earlier checkpoint existed"
            raise CheckpointWriteError(f"{path}: cannot write the checkpoint ({_reason(exc)}); {kept}") from None
        raise
    return path


def _reason(exc: BaseException) -> str:
    """The root OS error of a (possibly chained) write failure, in one line."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            if seen.errno == errno.ENOSPC:
                return "no space left on device: free some space, then resume"
            return seen.strerror or str(seen)
        seen = seen.__cause__ or seen.__context__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary files of saves that were killed before their rename (only safe to delete with the run locked)."""
    folder = Path(folder)
    return sorted(p for name in (LAST, BEST) for p in folder.glob(f".{name}.*{TMP_SUFFIX}"))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory (its best.pt, else last.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run directory holds neither {BEST} nor {LAST}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path


def check_inflation(file: str | os.PathLike) -> None:
    """Refuse a zip-format weights file whose members declare far more bytes than the file holds.

    ``torch.load`` inflates every member to its declared size before looking at it: a 2 MB
    file of deflated zeros is 2 GB of memory. The declared sizes come from the zip directory
    (no member is read); a member cannot inflate past its declared size in torch's reader.
    """
    file = Path(file)
    try:
        if not zipfile.is_zipfile(file):
            return  # the legacy pickle format stores tensors as they are: bounded by the file size
        with zipfile.ZipFile(file) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load reports an unreadable file itself, in one line
    size = file.stat().st_size
    if declared > max(MAX_INFLATION * size, INFLATION_FLOOR):
        raise CheckpointError(
            f"{file}: its zip members declare {declared} bytes uncompressed from {size} bytes on disk "
            f"(more than {MAX_INFLATION}x): refused as a possible decompression bomb"
        )


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely (weights_only=True, bounded inflation); errors name the file and the problem."""
    file = resolve_checkpoint(path)
    check_inflation(file)
    try:
        payload = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors, truncated files, foreign objects
        raise CheckpointError(f"{file}: cannot be loaded as a safe checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a unidual checkpoint (expected format {FORMAT!r})")
    for key in ("model", "model_spec"):
        if key not in payload:
            raise CheckpointError(f"{file}: checkpoint has no {key!r} entry")
    return payload


# Options a spec written before they existed was built without: the value in force then, so an
# old checkpoint rebuilds as it was trained even after the default changed (pathway_bn_stats
# arrived defaulting to False; True since the ablation of docs/results.md).
OPTIONS_BEFORE_THEY_EXISTED: dict[str, Any] = {"pathway_bn_stats": False}


def spec_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A ``model_spec``'s options, with the values older checkpoints were trained with filled in."""
    return {**OPTIONS_BEFORE_THEY_EXISTED, **dict(spec.get("options", {}))}


def spec_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: stored X, now Y"`` for every setting where a checkpoint's spec and a model's differ."""
    out = [
        f"{k}: stored {stored.get(k)!r}, now {current.get(k)!r}"
        for k in ("name", "depth", "width", "heads")
        if stored.get(k) != current.get(k)
    ]
    a, b = spec_options(stored), spec_options(current)
    out += [
        f"model.options.{k}: stored {a.get(k)!r}, now {b.get(k)!r}" for k in sorted(set(a) & set(b)) if a[k] != b[k]
    ]  # an option newer than the file: its default
    return out


def build_model(spec: dict[str, Any]) -> ImageVideoNet:
    """Rebuild the network described by a checkpoint's ``model_spec``."""
    try:
        return create_model(
            spec["name"],
            depth=spec["depth"],
            width=spec["width"],
            heads=dict(spec["heads"]),
            **spec_options(spec),
        )
    except (KeyError, TypeError, ValueError) as exc:  # unknown name/option, bad depth, missing field
        raise CheckpointError(f"its model_spec cannot be built ({exc})") from None


def load_weights(model: nn.Module, state: Any, file: str | os.PathLike) -> None:
    """``model.load_state_dict`` whose failure (tensors that do not fit the spec) names the file in one line."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"{file}: its weights do not fit its model_spec ({detail[:300]})") from None


WEIGHTS = ("ema", "raw")


def chosen_weights(payload: Mapping[str, Any], weights: str | None, file: str | os.PathLike) -> str:
    """``"raw"`` or ``"ema"``: ``weights``, or (None) the better on validation that the checkpoint records."""
    if weights is None:
        return str(payload.get("weights", "raw")) if payload.get("ema") is not None else "raw"
    if weights not in WEIGHTS:
        raise CheckpointError(f"weights must be one of {list(WEIGHTS)}, got {weights!r}")
    if weights == "ema" and payload.get("ema") is None:
        raise CheckpointError(f"{file}: holds no EMA weights (trained with run.ema_decay 0); use --weights raw")
    return weights


def load_model(
    path: str | os.PathLike,
    *,
    deploy: bool = True,
    map_location: str | torch.device = "cpu",
    weights: str | None = None,
) -> tuple[ImageVideoNet, dict[str, Any]]:
    """Model in eval mode plus the checkpoint dict (for its label maps and config).

    ``deploy=True`` drops auxiliary heads, as the paper does at inference. ``weights``: ``"raw"``,
    ``"ema"`` (the moving average, runs with ``run.ema_decay``), or None: the better on validation.
    """
    payload = load_checkpoint(path, map_location=map_location)
    file = resolve_checkpoint(path)
    try:
        model = build_model(payload["model_spec"])
    except CheckpointError as exc:
        raise CheckpointError(f"{file}: {exc}") from None
    chosen = chosen_weights(payload, weights, file)
    load_weights(model, payload["ema"]["model"] if chosen == "ema" else payload["model"], file)
    if deploy:
        model.deploy()
    model.eval()
    return model, payload
