"""PNG curves of a run's metrics.jsonl (loss and accuracy), drawn with matplotlib's object API (no pyplot, no global backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from unidual.run import read_metrics


def plot_metrics(metrics_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write loss.png (training loss per term) and accuracy.png (train and validation); return the files."""

    records, _ = read_metrics(metrics_path)
    train = [r for r in records if r.get("type") == "train"]
    val = [r for r in records if r.get("type") == "val"]
    out_dir = Path(out_dir)
    written: list[Path] = []
    if train:
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["loss"] for r in train], label="total", linewidth=2)
        for name in _series(train, "loss/"):
            ax.plot(steps, _values(train, name), label=name[5:], alpha=0.7)
        ax.set(xlabel="update", ylabel="cross-entropy", title="training loss")
        ax.legend(fontsize=8)
        written.append(_save(fig, out_dir / "loss.png"))
    if train or val:
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        for name in _series(train, "acc/"):
            ax.plot([r["step"] for r in train], _values(train, name), alpha=0.5, label=f"train {name[4:]}")
        for name in _series(val, "", suffixes=("/top1", "/video@1", "/clip@1")):
            ax.plot([r["step"] for r in val], _values(val, name), marker="o", label=f"val {name}")
        ax.set(xlabel="update", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
        ax.legend(fontsize=8)
        written.append(_save(fig, out_dir / "accuracy.png"))
    return written


def _series(records: list[dict[str, Any]], prefix: str, suffixes: tuple[str, ...] = ("",)) -> list[str]:
    names: list[str] = []
    for r in records:
        for k in r:
            wanted = k.startswith(prefix) and k.endswith(suffixes) and (prefix or "/" in k)
            if wanted and k not in names and k not in ("type", "step"):
                names.append(k)
    return names


def _values(records: list[dict[str, Any]], name: str) -> list[float]:
    """``name`` of every record; NaN (a gap in the curve) where a record has none."""
    return [math.nan if r.get(name) is None else r[name] for r in records]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
