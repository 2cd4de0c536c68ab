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
    sources      {key: {"modality": "image"|"video", "classes": [name, ...]}}
    config       the resolved run config (plain dict), optional
    train_state  optimiser / scheduler / sampler / RNG / epoch / step, optional
    metrics      last validation metrics, optional
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "unidual-checkpoint/1"
LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or not a unidual checkpoint."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely (weights_only=True); errors name the file and the problem."""
    file = resolve_checkpoint(path)
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


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Rebuild the network described by a checkpoint's ``model_spec``."""
    from unidual.models import create_model

    return create_model(
        spec["name"],
        depth=spec["depth"],
        width=spec["width"],
        heads=dict(spec["heads"]),
        **dict(spec.get("options", {})),
    )


def load_model(
    path: str | os.PathLike, *, deploy: bool = True, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Model in eval mode plus the checkpoint dict (for its label maps and config).

    ``deploy=True`` drops auxiliary heads, as the paper does at inference.
    """
    payload = load_checkpoint(path, map_location=map_location)
    model = build_model(payload["model_spec"])
    model.load_state_dict(payload["model"])
    if deploy and hasattr(model, "deploy"):
        model.deploy()
    model.eval()
    return model, payload
