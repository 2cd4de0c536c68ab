"""Classification metrics shared by the evaluator, `unidual eval` and notebooks.

Scores are combined as the paper does (section 3.1: "averaging the prediction
scores of individual clips"): every view (clip x crop) is turned into class
probabilities with a softmax *first*, then the probabilities are averaged with
equal weight. Averaging logits instead would let one over-confident clip
dominate. Accuracies are percentages (0-100) like the paper's tables.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor


def average_view_scores(logits: Tensor) -> Tensor:
    """(N, V, C) logits of V views per example -> (N, C) mean softmax probability."""
    if logits.dim() != 3:
        raise ValueError(f"expected (N, views, classes) logits, got shape {tuple(logits.shape)}")
    return logits.float().softmax(dim=-1).mean(dim=1)


def topk_hits(scores: Tensor, labels: Tensor, k: int) -> Tensor:
    """(N,) bool: is the label among the k highest scores? k is capped at the class count."""
    k = max(1, min(k, scores.shape[-1]))
    top = scores.topk(k, dim=-1).indices
    return (top == labels.view(-1, 1)).any(dim=-1)


def topk_accuracy(scores: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Percent of examples whose label is in the top-k, for each k."""
    if len(labels) == 0:
        return {k: math.nan for k in ks}
    return {k: 100.0 * topk_hits(scores, labels, k).float().mean().item() for k in ks}


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(confusion: Tensor) -> list[float]:
    """Top-1 percent per true class; NaN for a class with no test examples."""
    totals = confusion.sum(dim=1)
    correct = confusion.diagonal()
    return [100.0 * c / t if t > 0 else math.nan for c, t in zip(correct.tolist(), totals.tolist())]


def mean_class_accuracy(confusion: Tensor) -> float:
    """Mean of per-class accuracies over classes that have examples (robust to imbalance)."""
    values = [v for v in per_class_accuracy(confusion) if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def nll(probabilities: Tensor, labels: Tensor) -> float:
    """Mean negative log-likelihood of the true class under (averaged) probabilities."""
    if len(labels) == 0:
        return math.nan
    p = probabilities.gather(1, labels.view(-1, 1).long()).clamp_min(1e-12)
    return -p.log().mean().item()


def write_confusion_csv(confusion: Tensor, classes: Sequence[str], path: str | os.PathLike) -> Path:
    """CSV with a header row of predicted classes and one row per true class."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, confusion.tolist()):
            writer.writerow([name, *row])
    return path


def plot_confusion(confusion: Tensor, classes: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG (counts written in cells when it is small)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = confusion.double()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    n = len(classes)
    size = min(4 + 0.35 * n, 40)
    fig = Figure(figsize=(size, size * 0.9))
    ax = fig.subplots()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if n <= 60:
        ax.set_xticks(range(n), labels=list(classes), rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels=list(classes), fontsize=7)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                value = int(confusion[i, j])
                if value:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
