"""Sharded evaluation: which loader batches a rank runs, and the ranks' results back in one order.

A single process cuts a test set into loader batches of ``B`` consecutive examples (``B`` = views
per forward // views per example) and runs them in order. Under ``W`` ranks, batch ``b`` goes to
rank ``b mod W`` (round robin, so a class-ordered folder whose long videos sit together still
spreads its decoding evenly). All clips and crops of an example are inside its batch, so an example
never straddles two ranks. Each rank forwards exactly the batches a single process would -- the
same examples together, their views in the same order -- so every example's logits are the ones a
single process computes on the same kind of device. The ranks' per-batch records are gathered and
sorted by batch number: the concatenated scores, labels, indices and skip list are then the single
process's, element for element, and so is every metric computed from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from unidual.ranks import gather_objects


@dataclass
class BatchRecord:
    """What one loader batch produced: CPU tensors plus the files it skipped (picklable, for the gather)."""

    number: int  # position of the batch in single-process order
    scores: list[Tensor] = field(default_factory=list)  # (b, C) averaged probabilities, one per forward group
    singles: list[Tensor] = field(default_factory=list)  # (b, C) centre-view probabilities
    labels: list[Tensor] = field(default_factory=list)
    indices: list[Tensor] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def loader_batches(n: int, per_batch: int) -> list[list[int]]:
    """The batches a single process's ``DataLoader(batch_size=per_batch, shuffle=False)`` yields."""
    per_batch = max(1, per_batch)
    return [list(range(start, min(start + per_batch, n))) for start in range(0, n, per_batch)]


def shard(batches: Sequence[list[int]], rank: int, world_size: int) -> list[tuple[int, list[int]]]:
    """``(batch number, example indices)`` of the batches rank ``rank`` of ``world_size`` evaluates."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    return [(b, list(batches[b])) for b in range(rank, len(batches), world_size)]


def merge(per_rank: Sequence[Sequence[BatchRecord]]) -> list[BatchRecord]:
    """Every rank's records in single-process batch order (each batch number exactly once)."""
    records = sorted((r for rank in per_rank for r in rank), key=lambda r: r.number)
    numbers = [r.number for r in records]
    if numbers != list(range(len(numbers))):
        raise RuntimeError(f"sharded evaluation lost or repeated batches: got batch numbers {numbers}")
    return records


def gather(records: list[BatchRecord], failure: Exception | None, key: str) -> list[BatchRecord]:
    """Every rank's records in single-process order, on every rank; a failure on any rank raises on all.

    Gathered as pickled CPU tensors with ``all_gather_object`` (:func:`unidual.ranks.gather_objects`)
    rather than a tensor all-gather on the device: ranks hold different numbers of examples (uneven
    shards, skipped files) and a skip list of strings, which a tensor all-gather could only carry
    after a size exchange, padding and a second encoding. ``all_gather_object`` does the sizes itself
    and, under NCCL, stages the bytes through the current CUDA device, so no CPU tensor reaches a
    NCCL collective. The logits come to the CPU after every forward anyway (as on one process), so
    this adds no device-to-host copy; the volume is examples x classes x 2 floats once per source
    (Kinetics-400: 20k x 400 x 8 B = 64 MB), small next to decoding the clips.

    Every rank joins the gather even after an error of its own, so no rank is left waiting in a
    collective until the timeout: the failing rank then re-raises its error, the others a
    ``RuntimeError`` naming it.
    """
    gathered = gather_objects((records, None if failure is None else f"{type(failure).__name__}: {failure}"))
    failed = [(rank, why) for rank, (_, why) in enumerate(gathered) if why is not None]
    if failure is not None:
        raise failure
    if failed:
        rank, why = failed[0]
        raise RuntimeError(f"evaluating source {key!r} failed on rank {rank}: {why}")
    return merge([rank_records for rank_records, _ in gathered])
