"""`unidual features RUN FILE_OR_DIR... | --data SOURCES --out feats.npz`: one embedding per file.

The embedding is the network's pre-head activation (:meth:`ImageVideoNet.forward_features`: the
globally pooled backbone output, after the temporal mean / LSTM where the model has one) -- the
image pathway for an image, the video pathway for a video -- averaged over the file's test views
(clips × crops). The views are made exactly as ``predict`` (files) and ``eval`` (``--data``) make
them, through the same decode functions, so a retrieval index or a linear probe sees what the
classifier saw.

The ``.npz`` (``numpy.load(out)``, no pickle needed) holds ``features`` (N, C) float32 and, row by
row, ``paths``, ``modalities``, ``sources`` (the source key with ``--data``, else ``""``),
``labels`` (class index, -1 when unknown) and ``label_names``. Unreadable files are reported,
left out, and make the exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unidual.checkpoint import CheckpointError, load_model
from unidual.data import DataError
from unidual.data.utils import SKIPPED, read_or_skip
from unidual.evaluate.commands import parse_data_args
from unidual.evaluate.datasets import build_test_datasets, source_specs
from unidual.evaluate.predict import MAX_SIDE, detect_modality, expand_inputs, load_views, spec_for
from unidual.models import ImageVideoNet
from unidual.progress import Progress


@dataclass
class Row:
    """One file's views and what is known about it."""

    path: str
    modality: str
    views: Tensor  # (V, 3, H, W) or (V, 3, T, H, W)
    source: str = ""
    label: int = -1
    label_name: str = ""


@dataclass
class FeatureTable:
    rows: list[tuple[Row, Tensor]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def save(self, out: str | Path) -> Path:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        dim = self.rows[0][1].numel() if self.rows else 0
        column = [r for r, _ in self.rows]
        np.savez(
            out,
            features=np.stack([f.numpy() for _, f in self.rows]) if self.rows else np.zeros((0, dim), np.float32),
            paths=np.array([r.path for r in column], dtype=str),
            modalities=np.array([r.modality for r in column], dtype=str),
            sources=np.array([r.source for r in column], dtype=str),
            labels=np.array([r.label for r in column], dtype=np.int64),
            label_names=np.array([r.label_name for r in column], dtype=str),
        )
        return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")


@torch.no_grad()
def pooled_features(model: ImageVideoNet, views: Tensor, modality: str, device: str | torch.device = "cpu") -> Tensor:
    """(C,) pre-head activations of one file's views on the pathway of ``modality``, averaged over views."""
    if views.dim() == (3 if modality == "image" else 4):
        views = views.unsqueeze(0)  # one view without its view axis
    pathway = modality if modality in getattr(model, "pathways", ()) else None
    return model.forward_features(views.to(device), pathway).float().mean(dim=0).cpu()


def file_rows(
    payload: Mapping[str, Any], files: Iterable[str | Path], skipped: list[tuple[str, str]], max_side: int = MAX_SIDE
) -> Iterator[Row]:
    """Files as ``predict`` reads them (the run's first source of each modality sets the test views)."""
    specs: dict[str, Any] = {}
    for path in files:
        try:
            modality = detect_modality(path)
            spec = specs.setdefault(modality, spec_for(payload, modality))
            yield Row(str(path), modality, load_views(path, modality, spec, max_side))
        except Exception as exc:  # one unreadable file is reported, never stops the rest
            skipped.append((str(path), f"{type(exc).__name__}: {exc}"))


def dataset_rows(
    payload: Mapping[str, Any], datasets: Mapping[str, Any], skipped: list[tuple[str, str]]
) -> Iterator[Row]:
    """Every test example of the sources, as ``eval`` reads them, with its label."""
    known = payload.get("sources", {})
    for key, dataset in datasets.items():
        classes = list(known.get(key, {}).get("classes", []))
        modality = dataset.spec.modality
        for index in range(len(dataset)):
            item = read_or_skip(dataset, index, key)
            if SKIPPED in item:
                skipped.append(item[SKIPPED])
                continue
            label = int(item["label"])
            name = classes[label] if 0 <= label < len(classes) else ""
            yield Row(item["path"], modality, torch.as_tensor(item["input"]), key, label, name)


def extract(
    model: ImageVideoNet, rows: Iterable[Row], *, device: str | torch.device = "cpu", progress: bool = False
) -> list[tuple[Row, Tensor]]:
    model.eval().to(device)
    out = []
    for row in Progress(rows, desc="features", unit="file", disable=not progress, file=sys.stderr):
        out.append((row, pooled_features(model, row.views, row.modality, device)))
        row.views = row.views[:0]  # keep the metadata, not the pixels
    return out


def features(
    checkpoint: str | Path,
    files: Iterable[str | Path] = (),
    *,
    data: Mapping[str, str | dict[str, Any]] | None = None,
    device: str | torch.device = "cpu",
    max_side: int = MAX_SIDE,
    progress: bool = False,
) -> FeatureTable:
    """Python API: the embeddings of ``files`` (or of the test split of ``data``, as ``eval --data``)."""
    model, payload = load_model(checkpoint, deploy=True)
    table = FeatureTable()
    if data:
        specs = source_specs(payload, data, max_side=max_side)
        rows = dataset_rows(payload, build_test_datasets(payload, specs), table.skipped)
    else:
        rows = file_rows(payload, files, table.skipped, max_side)
    table.rows = extract(model, rows, device=device, progress=progress)
    return table


# -- the command -------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT", help="run directory (best.pt/last.pt) or .pt file")
    parser.add_argument("inputs", nargs="*", metavar="FILE_OR_DIR", help="images, videos or folders of them")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=PATH|SOURCES.yaml",
        help="the test split of these sources instead of files (as `unidual eval --data`; labels come along)",
    )
    parser.add_argument("--out", type=Path, required=True, help=".npz to write")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-side", type=int, default=MAX_SIDE, help=f"as in predict (default {MAX_SIDE})")


def main(args: argparse.Namespace) -> int:
    if bool(args.inputs) == bool(args.data):
        print("unidual features: give files or folders, or --data (not both)", file=sys.stderr)
        return 2
    if args.max_side < 1:
        print("unidual features: --max-side must be >= 1", file=sys.stderr)
        return 2
    try:
        data = parse_data_args(args.data) if args.data else None
        files = expand_inputs(args.inputs)
        table = features(
            args.checkpoint, files, data=data, device=args.device, max_side=args.max_side, progress=sys.stderr.isatty()
        )
    except (CheckpointError, DataError, KeyError, ValueError) as exc:
        print(f"unidual features: {exc}", file=sys.stderr)
        return 2
    for path, why in table.skipped:
        print(f"unidual features: skipped {path}: {why}", file=sys.stderr)
    if not table.rows:
        print("unidual features: no file could be read; nothing written", file=sys.stderr)
        return 1
    out = table.save(args.out)
    dim = table.rows[0][1].numel()
    print(f"wrote {out}: {len(table.rows)} embeddings of {dim} values ({len(table.skipped)} skipped)")
    return 1 if table.skipped else 0
