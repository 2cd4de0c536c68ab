"""Multi-clip / multi-crop evaluation of one model on several sources.

A test video arrives as ``(V, 3, T, H, W)`` with V = clips x crops (clip-major:
all crops of clip 0, then of clip 1, ...); a test image as ``(3, H, W)`` (or
``(V, 3, H, W)`` if the transform made several crops). Every view goes through
the pathway of its modality, each view's logits become softmax probabilities,
and the probabilities are averaged with equal weight over all V views
(see `metrics.average_view_scores`). ``clip@1`` instead scores a single view:
the centre crop of the clip nearest the middle of the video.

The trainer validates through `evaluate`; this module never imports it. With
``distributed=True`` every rank of the process group evaluates a shard of each
source and every rank gets the whole result, equal to one process's
(:mod:`unidual.evaluate.shards`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from unidual.data.utils import SKIPPED, SizedDataset, read_or_skip
from unidual.evaluate import metrics as M
from unidual.evaluate.shards import BatchRecord, gather, loader_batches, shard
from unidual.progress import Progress
from unidual.ranks import rank_and_world

# The metric each modality is ranked by (what the paper's tables report first).
PRIMARY_METRIC = {"image": "top1", "video": "video@1"}
_BASE_DIMS = {"image": 3, "video": 4}


@dataclass
class SourceResult:
    """Everything measured on one source; metrics are derived on demand."""

    key: str
    modality: str
    classes: list[str]
    scores: Tensor  # (N, C) averaged probabilities
    labels: Tensor  # (N,)
    indices: Tensor  # (N,) dataset index of each row
    single_view: Tensor  # (N, C) probabilities of the single (centre) view
    views: tuple[int, int]  # (clips, crops) per example
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def predictions(self) -> Tensor:
        return self.scores.argmax(dim=1)

    def confusion(self) -> Tensor:
        return M.confusion_matrix(self.predictions, self.labels, len(self.classes))

    def per_class(self) -> dict[str, float]:
        return dict(zip(self.classes, M.per_class_accuracy(self.confusion())))

    def per_example(self) -> dict[str, Tensor]:
        """Whether each example counts as correct for every accuracy metric (bool, one per row).

        The mean of each is the metric of :meth:`metrics` (as a fraction); kept per example so
        that two models evaluated on the same test set can be compared pairwise.
        """

        def hit(scores: Tensor, k: int) -> Tensor:
            if len(self.labels) == 0:
                return torch.zeros(0, dtype=torch.bool)
            top = scores.topk(min(k, scores.shape[1]), dim=1).indices
            return (top == self.labels.unsqueeze(1)).any(1)

        if self.modality == "video":
            return {"clip@1": hit(self.single_view, 1), "video@1": hit(self.scores, 1), "video@5": hit(self.scores, 5)}
        return {"top1": hit(self.scores, 1), "top5": hit(self.scores, 5)}

    def metrics(self) -> dict[str, float]:
        top = M.topk_accuracy(self.scores, self.labels, (1, 5))
        out: dict[str, float] = {}
        if self.modality == "video":
            out["clip@1"] = M.topk_accuracy(self.single_view, self.labels, (1,))[1]
            out["video@1"], out["video@5"] = top[1], top[5]
        else:
            out["top1"], out["top5"] = top[1], top[5]
        out["mean_class@1"] = M.mean_class_accuracy(self.confusion())
        out["nll"] = M.nll(self.scores, self.labels)
        out["examples"] = float(len(self.labels))
        out["skipped"] = float(len(self.skipped))
        return out


class _Guarded(Dataset):
    """Returns a skip marker instead of raising for an unreadable example, so one bad file is skipped."""

    def __init__(self, dataset: SizedDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return read_or_skip(self.dataset, index)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    good = [it for it in items if SKIPPED not in it]
    bad = [it[SKIPPED] for it in items if SKIPPED in it]
    batch: dict[str, Any] = {SKIPPED: bad, "size": len(good)}
    if good:
        inputs = [torch.as_tensor(it["input"]) for it in good]
        labels = [int(it["label"]) for it in good]
        indices = [int(it.get("index", -1)) for it in good]
        if len({tuple(x.shape) for x in inputs}) == 1:
            batch["parts"] = [(torch.stack(inputs), torch.as_tensor(labels), torch.as_tensor(indices))]
        else:  # a transform that keeps the native size: examples of different sizes run one by one
            batch["parts"] = [
                (x[None], torch.as_tensor([y]), torch.as_tensor([i])) for x, y, i in zip(inputs, labels, indices)
            ]
    return batch


def view_layout(dataset: Any, views: int) -> tuple[int, int]:
    """(clips, crops) of a test example with ``views`` views, read from the source spec if known."""
    spec = getattr(dataset, "spec", None)
    crops = getattr(getattr(spec, "transform", None), "test_crops", None)
    if isinstance(crops, int) and crops > 0 and views % crops == 0:
        return views // crops, crops
    clips = getattr(getattr(spec, "clip", None), "num_clips", None)
    if isinstance(clips, int) and clips > 0 and views % clips == 0:
        return clips, views // clips
    return views, 1


def centre_view(clips: int, crops: int) -> int:
    """Index of the centre crop of the middle clip (clip-major view order)."""
    return (clips // 2) * crops + crops // 2


def head_name(model: nn.Module, key: str, modality: str) -> str:
    """The head a sample of source ``key`` uses on its own pathway."""
    head_for = getattr(model, "head_for", None)  # an ImageVideoNet's; any other model: one head per source
    return key if head_for is None else head_for(key, modality)


def iterate_views(x: Tensor, chunk: int) -> Iterator[Tensor]:
    """Split a flat batch of views into forward passes of at most ``chunk``."""
    for start in range(0, x.shape[0], max(1, chunk)):
        yield x[start : start + chunk]


def _progress(total: int, desc: str, enabled: bool):
    return Progress(total=total, desc=desc, unit="ex", disable=not enabled, file=sys.stderr, leave=False)


def _view_logits(
    net: nn.Module, x: Tensor, head: str, key: str, modality: str, chunk: int, device: torch.device, shared: bool
) -> Tensor:
    """``(B, V, classes)`` logits of a batch of examples with V views each, ``chunk`` views per forward.

    ``shared``: ``head`` is another source's (``head:``), maybe on the other pathway: asked for by name.
    """
    if x.dim() == _BASE_DIMS[modality] + 1:
        x = x.unsqueeze(1)  # one view per example
    b, v = x.shape[:2]
    logits = []
    for part in iterate_views(x.reshape(b * v, *x.shape[2:]), chunk):
        part = part.to(device, non_blocking=True)
        out = net(part, heads=[head]) if shared else net(part)
        if head not in out:
            raise KeyError(f"model has no head {head!r} for source {key!r}; heads: {sorted(out)}")
        logits.append(out[head].float().cpu())
    return torch.cat(logits).view(b, v, -1)


def _views_per_example(dataset: SizedDataset, modality: str) -> int:
    """How many views an example has, read from example 0 (1 if it is unreadable or there is none)."""
    n = len(dataset)
    probe = _Guarded(dataset)[0] if n else None
    if probe is None or SKIPPED in probe:
        return 1
    first = torch.as_tensor(probe["input"])
    return 1 if first.dim() == _BASE_DIMS[modality] else first.shape[0]


def _run_batches(
    net: nn.Module,
    dataset: SizedDataset,
    mine: list[tuple[int, list[int]]],
    source: tuple[str, str, str, list[str]],
    *,
    shared: bool,
    batch_size: int,
    single: int,
    device: torch.device,
    num_workers: int,
    progress: bool,
) -> list[BatchRecord]:
    """Forward this rank's loader batches; one record (CPU tensors) per batch."""
    key, modality, head, classes = source
    loader = DataLoader(
        _Guarded(dataset), batch_sampler=[idx for _, idx in mine], num_workers=num_workers, collate_fn=_collate
    )
    records = []
    with _progress(sum(len(idx) for _, idx in mine), f"eval {key}", progress) as bar:
        for (number, _), batch in zip(mine, loader):
            record = BatchRecord(number, skipped=list(batch[SKIPPED]))
            bar.update(batch["size"] + len(batch[SKIPPED]))
            for x, y, idx in batch.get("parts", []):
                logits_t = _view_logits(net, x, head, key, modality, batch_size, device, shared)
                if classes and logits_t.shape[-1] != len(classes):
                    raise ValueError(
                        f"source {key!r}: head {head!r} has {logits_t.shape[-1]} classes but the label map "
                        f"has {len(classes)}; evaluate with the run's label map"
                    )
                record.scores.append(M.average_view_scores(logits_t))
                record.singles.append(logits_t[:, min(single, logits_t.shape[1] - 1)].softmax(-1))
                record.labels.append(y)
                record.indices.append(idx)
            records.append(record)
    return records


@torch.no_grad()
def evaluate_source(
    model: nn.Module,
    dataset: SizedDataset,
    key: str,
    modality: str,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    distributed: bool = False,
    head: str | None = None,
) -> SourceResult:
    """Run ``dataset`` (a test split) through the model; ``batch_size`` caps views per forward.

    ``head``: score with that source's head (a source trained with ``head:``; its labels are already
    that head's), on the pathway of the source's own modality. None: the source's own head.

    ``distributed``: every rank of the initialised process group calls this with the same model and
    dataset; each evaluates its shard (:mod:`unidual.evaluate.shards`) and every rank returns the
    whole result, equal to a single process's. Without a process group it is one process.
    """
    net = getattr(model, "module", model)  # unwrap DDP: validation needs no gradient sync
    device = torch.device(device)
    shared = head is not None
    head = head if head is not None else head_name(net, key, modality)
    classes = list(getattr(dataset, "classes", []))
    views = _views_per_example(dataset, modality)
    clips, crops = view_layout(dataset, views)
    rank, world = rank_and_world() if distributed else (0, 1)
    mine = shard(loader_batches(len(dataset), batch_size // views), rank, world)
    records: list[BatchRecord] = []
    failure: Exception | None = None
    try:
        records = _run_batches(
            net,
            dataset,
            mine,
            (key, modality, head, classes),
            shared=shared,
            batch_size=batch_size,
            single=centre_view(clips, crops),
            device=device,
            num_workers=num_workers,
            progress=progress and rank == 0,
        )
    except Exception as exc:
        if world == 1:
            raise
        failure = exc
    if world > 1:
        records = gather(records, failure, key)
    return _source_result(records, key, modality, classes, (clips, crops))


def _source_result(
    records: list[BatchRecord], key: str, modality: str, classes: list[str], views: tuple[int, int]
) -> SourceResult:
    """Concatenate the records (already in single-process order) into one :class:`SourceResult`."""
    scores = [t for r in records for t in r.scores]
    num_classes = len(classes) if classes else (scores[0].shape[1] if scores else 0)
    classes = classes or [str(i) for i in range(num_classes)]

    def cat(name: str, empty: Tensor) -> Tensor:
        parts = [t for r in records for t in getattr(r, name)]
        return torch.cat(parts) if parts else empty

    no_rows = torch.zeros(0, num_classes)
    return SourceResult(
        key=key,
        modality=modality,
        classes=classes,
        scores=cat("scores", no_rows),
        labels=cat("labels", torch.zeros(0, dtype=torch.long)),
        indices=cat("indices", torch.zeros(0, dtype=torch.long)),
        single_view=cat("singles", no_rows),
        views=views,
        skipped=[s for r in records for s in r.skipped],
    )


def evaluate_sources(
    model: nn.Module,
    datasets: Mapping[str, SizedDataset],
    modalities: Mapping[str, str],
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    distributed: bool = False,
    head_of: Mapping[str, str] | None = None,
) -> dict[str, SourceResult]:
    """Full results (scores, labels, confusion, per-class) per source key.

    ``head_of``: ``{source: head}`` for the sources trained with ``head:`` (shared label space).

    ``distributed``: each rank of the process group evaluates its shard of every source and every
    rank returns the full results (see :func:`evaluate_source`); all ranks must call it.
    """
    was_training = model.training
    model.eval()
    try:
        return {
            key: evaluate_source(
                model,
                ds,
                key,
                modalities[key],
                batch_size=batch_size,
                device=device,
                num_workers=num_workers,
                progress=progress,
                distributed=distributed,
                head=(head_of or {}).get(key),
            )
            for key, ds in datasets.items()
        }
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module,
    datasets: Mapping[str, SizedDataset],
    modalities: Mapping[str, str],
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    distributed: bool = False,
    head_of: Mapping[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """``{source key: {metric: value}}``; accuracies in percent. The trainer's validation entry point.

    Video metrics: ``clip@1``, ``video@1``, ``video@5``; image metrics: ``top1``,
    ``top5``; both: ``mean_class@1``, ``nll``, ``examples``, ``skipped``. ``distributed``: sharded
    over the ranks of the process group, the same metrics on every rank (see :func:`evaluate_source`).
    """
    results = evaluate_sources(
        model,
        datasets,
        modalities,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
        distributed=distributed,
        head_of=head_of,
    )
    return {key: r.metrics() for key, r in results.items()}


def format_table(results: Mapping[str, Mapping[str, float]], columns: Sequence[str] | None = None) -> str:
    """A readable fixed-width table of ``evaluate`` output (one row per source)."""
    if columns is None:
        columns = []
        for row in results.values():
            columns += [c for c in row if c not in columns]
    header = ["source", *columns]
    rows = [[key, *(_fmt(row.get(c)) for c in columns)] for key, row in results.items()]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [
        "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}"
