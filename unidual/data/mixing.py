"""Mixing several sources into mini-batches.

``MixedSampler`` is a batch sampler: every step it yields a list of ``(key, index)``.
Each source gets a fixed share of every mini-batch (equal shares by default, whatever
the source sizes), fractional shares are spread over steps by smooth weighted
round-robin so the long-run proportions are exact. An epoch is a number of examples
(global, over all ranks). Within a source, indices follow seeded random permutations
that are consumed in order and renewed when exhausted, so every example of a source
is seen once before any is repeated. Rank ``r`` of ``w`` takes the ``r``-th slice of
every step's draw, so ranks never overlap.

Class-balanced sampling inside a source (``balance: b`` in [0, 1], off at 0): each draw first
picks a class with probability ∝ ``count^(1 - b)`` and then that class's next example (seeded
permutations per class, as above). ``b = 1`` draws every class equally often, ``b = 0`` is
the plain per-source permutation above. This is OmniSource's / mmaction2's ``power`` with
``power = 1 - b`` (class probability ∝ count^power).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler, get_worker_info
from torch.utils.data._utils.worker import _generate_state

from unidual.data.errors import DataError
from unidual.data.utils import SKIPPED, SizedDataset, read_or_skip


def batch_shares(weights: Mapping[str, float], batch_size: int, steps: int) -> list[dict[str, int]]:
    """Examples per source for each of ``steps`` batches (smooth weighted round-robin)."""
    total = float(sum(weights.values()))
    exact = {k: batch_size * w / total for k, w in weights.items()}
    base = {k: int(math.floor(v)) for k, v in exact.items()}
    credit = {k: 0.0 for k in weights}
    plan = []
    for _ in range(steps):
        counts = dict(base)
        extra = batch_size - sum(base.values())
        for k in credit:
            credit[k] += exact[k] - base[k]
        for k in sorted(credit, key=lambda k: (-credit[k], list(weights).index(k)))[:extra]:
            counts[k] += 1
            credit[k] -= 1.0
        plan.append(counts)
    return plan


class _Stream:
    """An endless sequence of seeded permutations of range(size)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.pass_no, self.pos = size, seed, 0, 0
        self._perm = self._make()

    def _make(self) -> list[int]:
        # modulo 2**63: a balanced class stream's seed (x 8191) would overflow torch's int64 seed otherwise
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.pass_no) % 2**63)
        return torch.randperm(self.size, generator=g).tolist()

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            if self.pos == self.size:
                self.pass_no, self.pos = self.pass_no + 1, 0
                self._perm = self._make()
            k = min(n - len(out), self.size - self.pos)
            out += self._perm[self.pos : self.pos + k]
            self.pos += k
        return out


class _BalancedStream:
    """Class first (probability ∝ count^(1 - balance)), then the next example of that class's own permutations."""

    def __init__(self, labels: Sequence[int], balance: float, seed: int) -> None:
        members: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            members.setdefault(int(label), []).append(index)
        self.classes = sorted(members)
        self.members = [members[c] for c in self.classes]
        counts = torch.tensor([len(m) for m in self.members], dtype=torch.float64)
        self.probs = counts ** (1.0 - balance)
        self.streams = [_Stream(len(m), seed * 8191 + j) for j, m in enumerate(self.members)]
        self.generator = torch.Generator().manual_seed(seed)

    def take(self, n: int) -> list[int]:
        picks = torch.multinomial(self.probs, n, replacement=True, generator=self.generator).tolist()
        drawn = {j: iter(self.streams[j].take(picks.count(j))) for j in sorted(set(picks))}
        return [self.members[j][next(drawn[j])] for j in picks]


class MixedSampler(Sampler[list[tuple[str, int]]]):
    """Per-step lists of ``(key, index)``; deterministic for ``seed``, resumable mid-epoch."""

    def __init__(
        self,
        sizes: Mapping[str, int],
        batch_size: int,
        epoch_size: int,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        labels: Mapping[str, Sequence[int]] | None = None,
        balance: Mapping[str, float] | None = None,
    ) -> None:
        if not sizes:
            raise DataError("MixedSampler needs at least one source")
        bad = {k: n for k, n in sizes.items() if n < 1}
        if bad:
            raise DataError(f"MixedSampler: sources without examples: {bad}")
        if batch_size < 1 or epoch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise DataError(
                f"MixedSampler: bad batch_size={batch_size}, epoch_size={epoch_size}, rank={rank}, world_size={world_size}"
            )
        weights = dict(weights) if weights else {k: 1.0 for k in sizes}
        unknown = set(weights) - set(sizes)
        if unknown or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise DataError(f"MixedSampler: weights {weights} must be >= 0, sum > 0, over the sources {sorted(sizes)}")
        self.sizes = dict(sizes)
        self.weights = {k: float(weights.get(k, 0.0)) for k in sizes}
        self.batch_size, self.epoch_size, self.seed = batch_size, epoch_size, seed
        self.rank, self.world_size = rank, world_size
        self.balance = _check_balance(sizes, labels, balance)  # only the sources with balance > 0
        self.labels = {k: list((labels or {})[k]) for k in self.balance}
        self.epoch = 0
        self.start_step = 0  # first step the next iteration yields (mid-epoch resume)
        self.steps_done = 0  # steps yielded so far in the current epoch

    def __len__(self) -> int:
        """Steps per epoch: epoch_size examples over global batches of batch_size * world_size."""
        return max(self.epoch_size // (self.batch_size * self.world_size), 1)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.start_step, self.steps_done = epoch, 0, 0

    def step_counts(self, step: int = 0) -> dict[str, int]:
        """Examples per source in micro-batch ``step`` of an epoch (this rank's; the same on every rank)."""
        plan = batch_shares({k: w for k, w in self.weights.items() if w > 0}, self.batch_size, step + 1)
        return {k: n for k, n in plan[step].items() if n}

    def _batches(self) -> Iterator[list[tuple[str, int]]]:
        plan = batch_shares({k: w for k, w in self.weights.items() if w > 0}, self.batch_size, len(self))
        keys = list(self.sizes)
        streams: dict[str, _Stream | _BalancedStream] = {}
        for k in self.sizes:
            seed = (self.seed * 7919 + self.epoch) * 1009 + keys.index(k)
            balanced = k in self.balance
            streams[k] = (
                _BalancedStream(self.labels[k], self.balance[k], seed) if balanced else _Stream(self.sizes[k], seed)
            )
        for counts in plan:
            batch: list[tuple[str, int]] = []
            for key, n in counts.items():
                if n:
                    drawn = streams[key].take(n * self.world_size)  # every rank draws, each keeps its slice
                    batch += [(key, i) for i in drawn[self.rank * n : (self.rank + 1) * n]]
            yield batch

    def __iter__(self) -> Iterator[list[tuple[str, int]]]:
        start = self.start_step
        self.steps_done = start
        for step, batch in enumerate(self._batches()):
            if step < start:
                continue
            self.steps_done = step + 1
            yield batch
        self.start_step = 0  # a finished epoch restarts from its beginning unless set_epoch moves on

    def state_dict(self, steps_done: int | None = None) -> dict[str, Any]:
        """Position to resume from. With DataLoader prefetching, pass the batches actually consumed."""
        state = {
            "epoch": self.epoch,
            "step": self.steps_done if steps_done is None else int(steps_done),
            "seed": self.seed,
            "sizes": dict(self.sizes),
            "batch_size": self.batch_size,
            "world_size": self.world_size,
        }
        if self.balance:  # absent when off: the state of an unbalanced run is what it always was
            state["balance"] = dict(self.balance)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = {"balance": {}, **state}  # a state without it was saved with balancing off
        for name in ("seed", "sizes", "batch_size", "world_size", "balance"):
            if name in state and state[name] != getattr(self, name):
                raise DataError(
                    f"MixedSampler state was saved with {name}={state[name]!r}, now {getattr(self, name)!r}"
                )
        self.epoch = int(state["epoch"])
        self.start_step = self.steps_done = int(state["step"])


def _check_balance(
    sizes: Mapping[str, int], labels: Mapping[str, Sequence[int]] | None, balance: Mapping[str, float] | None
) -> dict[str, float]:
    """``{source: balance}`` of the sources that balance (> 0), after checking they have one label per example."""
    balance = {k: float(b) for k, b in (balance or {}).items() if b}
    unknown = set(balance) - set(sizes)
    bad = {k: b for k, b in balance.items() if not 0 <= b <= 1}
    if unknown or bad:
        raise DataError(f"MixedSampler: balance {dict(balance)} must be in [0, 1], over the sources {sorted(sizes)}")
    for key in balance:
        given = (labels or {}).get(key)
        if given is None or len(given) != sizes[key]:
            have = "none" if given is None else len(given)
            raise DataError(f"MixedSampler: balance of source {key!r} needs its {sizes[key]} labels, got {have}")
    return balance


class MixedDataset(Dataset):
    """Reads ``(key, index)`` from the source datasets; a bad example becomes a skip marker.

    An item may carry a third element, the loader's *base seed* of the current epoch
    (:class:`EpochSeeded`): a persistent worker that sees a new one reseeds its random generators
    exactly as a fresh DataLoader worker would (``base_seed + worker_id``), so an epoch's
    augmentations do not depend on whether the workers were kept from the previous epoch.
    """

    def __init__(self, datasets: Mapping[str, SizedDataset]) -> None:
        self.datasets = dict(datasets)
        self._seeded: int | None = None  # the base seed this worker last applied

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets.values())

    def __getitem__(self, item: tuple[str, int] | tuple[str, int, int]) -> dict[str, Any]:
        key, index = item[0], item[1]
        if len(item) == 3 and item[2] != self._seeded:
            self._seeded = _reseed_worker(item[2])
        return read_or_skip(self.datasets[key], index, key)


def _reseed_worker(base_seed: int) -> int:
    """Seed this DataLoader worker as torch's ``_worker_loop`` does (no-op in the main process)."""
    info = get_worker_info()
    if info is not None:
        seed = base_seed + info.id
        random.seed(seed)
        torch.manual_seed(seed)
        np.random.seed(_generate_state(base_seed, info.id))
    return base_seed


class EpochSeeded(Sampler[list[tuple[str, int, int]]]):
    """A batch sampler's ``(key, index)`` items with the epoch's worker base seed appended.

    For persistent DataLoader workers (kept across epochs): the trainer sets :attr:`base_seed`
    before each epoch to what a new DataLoader would have drawn for it.
    """

    def __init__(self, batches: MixedSampler) -> None:
        self.batches = batches
        self.base_seed = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[str, int, int]]]:
        seed = self.base_seed
        for batch in self.batches:
            yield [(key, index, seed) for key, index in batch]


class SubBatch(TypedDict):
    """One source's examples of a mini-batch, stacked: ``input`` (N,3,H,W) images or (N,3,T,H,W) clips."""

    input: Tensor
    label: Tensor  # (N,) int64 class indices of the source's label map
    index: Tensor  # (N,) int64 example indices in the source's dataset


@dataclass
class MixedBatch:
    """What the loader hands the trainer for one micro-step (the output of :func:`collate_mixed`).

    ``sub`` has one dense :class:`SubBatch` per source present (a source whose every example in this
    micro-batch was unreadable is absent). ``skipped`` names each unreadable example's file and
    error, ``skipped_sources`` its source key (same order), so the trainer can charge the skip
    budget of the right source.
    """

    sub: dict[str, SubBatch]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_sources: list[str] = field(default_factory=list)

    def drawn(self) -> dict[str, int]:
        """Examples the sampler drew per source, unreadable ones included."""
        counts = {k: len(v["label"]) for k, v in self.sub.items()}
        for key in self.skipped_sources:
            counts[key] = counts.get(key, 0) + 1
        return counts

    def filled(self, spares: Mapping[str, Mapping[str, Any]], order: Sequence[str]) -> MixedBatch:
        """Every source at the size the sampler drew, in ``order``: for multi-process training.

        Each unreadable example's place is taken by a copy of a readable one of the same source
        (from this batch, else ``spares[key]``, an example read before training), so every rank
        runs the same sources with the same batch shapes in the same order -- the pathway sequence,
        and with it every per-layer collective of SyncBatchNorm, cannot diverge between ranks. The
        skips stay listed (they are counted and logged as before).
        """
        drawn = self.drawn()
        sub: dict[str, SubBatch] = {}
        for key in order:
            want = drawn.get(key, 0)
            have = self.sub.get(key)
            n = len(have["label"]) if have is not None else 0
            if want == 0 or (have is not None and n == want):
                if have is not None:
                    sub[key] = have
                continue
            if have is not None and n:
                rows = torch.arange(want - n) % n
                sub[key] = SubBatch(
                    input=torch.cat([have["input"], have["input"][rows]]),
                    label=torch.cat([have["label"], have["label"][rows]]),
                    index=torch.cat([have["index"], have["index"][rows]]),
                )
            else:
                spare = spares[key]
                sub[key] = SubBatch(
                    input=spare["input"].unsqueeze(0).expand(want, *spare["input"].shape).contiguous(),
                    label=torch.full((want,), int(spare["label"]), dtype=torch.long),
                    index=torch.full((want,), int(spare["index"]), dtype=torch.long),
                )
        return MixedBatch(sub, self.skipped, self.skipped_sources)

    def pin_memory(self) -> MixedBatch:
        """Called by DataLoader(pin_memory=True) in its pinning thread: page-locked inputs copy asynchronously."""
        sub = {k: SubBatch(input=v["input"].pin_memory(), label=v["label"].pin_memory(),
                           index=v["index"]) for k, v in self.sub.items()}  # fmt: skip
        return MixedBatch(sub, self.skipped, self.skipped_sources)


def collate_mixed(items: list[dict[str, Any]]) -> MixedBatch:
    """One dense tensor per source (:class:`MixedBatch`); unreadable examples are listed, not batched."""
    groups: dict[str, dict[str, list]] = {}
    batch = MixedBatch(sub={})
    for item in items:
        if SKIPPED in item:
            batch.skipped.append(item[SKIPPED])
            batch.skipped_sources.append(item["source"])
            continue
        group = groups.setdefault(item["source"], {"input": [], "label": [], "index": [], "path": []})
        group["input"].append(item["input"])
        group["label"].append(item["label"])
        group["index"].append(item["index"])
        group["path"].append(item.get("path", f"{item['source']}[{item['index']}]"))
    for key, g in groups.items():
        batch.sub[key] = SubBatch(
            input=_stack(key, g),
            label=torch.tensor(g["label"], dtype=torch.long),
            index=torch.tensor(g["index"], dtype=torch.long),
        )
    return batch


def _stack(key: str, group: Mapping[str, list]) -> torch.Tensor:
    """One batch tensor; examples of different sizes (a transform that keeps the native size) are an error naming two files."""
    inputs = group["input"]
    first = tuple(inputs[0].shape)
    for i, x in enumerate(inputs):
        if tuple(x.shape) != first:
            raise DataError(
                f"source {key!r}: examples of different sizes cannot share a batch: {group['path'][0]} gives "
                f"{list(first)}, {group['path'][i]} gives {list(x.shape)}; give the source's transform a "
                "resize and a crop (protocol A/B, or custom resize: + crop:), or use optim.batch_size=1"
            )
    return torch.stack(inputs)
