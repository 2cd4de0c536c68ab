from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from unidual.data.mixing import MixedDataset, MixedSampler, batch_shares, collate_mixed

SIZES = {"images": 500, "videos": 100}


def test_equal_proportion_per_batch_despite_unequal_sizes():
    sampler = MixedSampler(SIZES, batch_size=8, epoch_size=400, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50
    for b in batches:
        assert Counter(k for k, _ in b) == {"images": 4, "videos": 4}


def test_weights_and_fractional_shares_are_exact_on_average():
    plan = batch_shares({"a": 1.0, "b": 1.0, "c": 1.0}, 8, 30)
    assert all(sum(c.values()) == 8 for c in plan)
    totals = Counter()
    for c in plan:
        totals.update(c)
    assert totals == {"a": 80, "b": 80, "c": 80}
    sampler = MixedSampler(SIZES, batch_size=10, epoch_size=100, weights={"images": 4, "videos": 1})
    assert Counter(k for b in sampler for k, _ in b) == {"images": 80, "videos": 20}


def test_every_example_once_before_repeats():
    sampler = MixedSampler(SIZES, batch_size=10, epoch_size=200, seed=3)
    videos = [i for b in sampler for k, i in b if k == "videos"]
    assert sorted(videos) == list(range(100))


def test_deterministic_and_epoch_dependent():
    a = list(MixedSampler(SIZES, 8, 80, seed=5))
    b = list(MixedSampler(SIZES, 8, 80, seed=5))
    s = MixedSampler(SIZES, 8, 80, seed=5)
    s.set_epoch(1)
    assert a == b and list(s) != a


def test_ranks_do_not_overlap():
    per_rank = [list(MixedSampler(SIZES, 4, 80, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 10
    seen0 = {x for b in per_rank[0] for x in b}
    seen1 = {x for b in per_rank[1] for x in b}
    assert not seen0 & seen1 and len(seen0) == len(seen1) == 40


def test_resume_mid_epoch_exactly():
    full = MixedSampler(SIZES, 8, 160, seed=2)
    full.set_epoch(3)
    expected = list(full)
    first = MixedSampler(SIZES, 8, 160, seed=2)
    first.set_epoch(3)
    it = iter(first)
    head = [next(it) for _ in range(7)]
    state = first.state_dict()
    resumed = MixedSampler(SIZES, 8, 160, seed=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # the trainer's usual call must not reset a resumed epoch
    assert head + list(resumed) == expected
    assert MixedSampler(SIZES, 8, 160, seed=2).state_dict(steps_done=4)["step"] == 4


class _Toy(Dataset):
    def __init__(self, key, shape, bad=()):
        self.key, self.shape, self.bad = key, shape, set(bad)
        self.files = [f"/data/{key}/{i}" for i in range(20)]

    def __len__(self):
        return 20

    def __getitem__(self, i):
        if i in self.bad:
            raise OSError("truncated file")
        return {"input": torch.full(self.shape, float(i)), "label": i % 3, "source": self.key, "index": i}


def test_mixed_loader_groups_by_source_and_skips_bad():
    datasets = {"img": _Toy("img", (3, 4, 4), bad=range(20)), "vid": _Toy("vid", (3, 2, 4, 4))}
    datasets["img"].bad = {0, 1, 2, 3, 4}
    sampler = MixedSampler({k: len(d) for k, d in datasets.items()}, batch_size=8, epoch_size=40, seed=0)
    loader = DataLoader(MixedDataset(datasets), batch_sampler=sampler, collate_fn=collate_mixed)
    skipped, seen = [], 0
    for batch in loader:
        vid = batch.sub["vid"]
        assert vid["input"].shape == (4, 3, 2, 4, 4) and vid["label"].dtype == torch.long
        assert torch.equal(vid["input"][:, 0, 0, 0, 0].long(), vid["index"])
        img = batch.sub.get("img")
        seen += 0 if img is None else img["input"].shape[0]
        skipped += batch.skipped
    assert seen + len(skipped) == 20
    assert len(skipped) == 5 and all(p.startswith("/data/img/") and "truncated" in r for p, r in skipped)


def test_bad_arguments_rejected():
    with pytest.raises(Exception, match="weights"):
        MixedSampler(SIZES, 4, 8, weights={"nope": 1})
    with pytest.raises(Exception, match="without examples"):
        MixedSampler({"a": 0}, 4, 8)


def test_real_sources_through_two_workers(tmp_path):
    from unidual.data.builtin import make_default_dataset
    from unidual.data.sources import build_dataset

    specs = make_default_dataset(tmp_path, images_per_class=(2, 1), videos_per_class=(1, 1))
    datasets = {k: build_dataset(s, "train") for k, s in specs.items()}
    sampler = MixedSampler({k: len(d) for k, d in datasets.items()}, batch_size=4, epoch_size=16, seed=0)
    loader = DataLoader(MixedDataset(datasets), batch_sampler=sampler, collate_fn=collate_mixed, num_workers=2)
    batches = list(loader)
    assert len(batches) == 4 and all(not b.skipped for b in batches)
    assert all(b.sub["motion"]["input"].shape == (2, 3, 8, 32, 32) for b in batches)
    assert all(b.sub["shapes"]["input"].shape == (2, 3, 32, 32) for b in batches)


# --------------------------------------------------------------------------- class-balanced sampling (recipe)

IMBALANCED = [0] * 80 + [1] * 15 + [2] * 5  # 100 examples of 3 classes


def test_balance_zero_draws_exactly_todays_sequence():
    # recorded from the sampler before class balancing existed (seeded permutations per source)
    today = [
        [("a", 3), ("a", 4), ("b", 0)],
        [("a", 0), ("b", 4), ("b", 3)],
        [("a", 1), ("a", 2), ("b", 2)],
        [("a", 6), ("b", 1), ("b", 2)],
        [("a", 5), ("a", 5), ("b", 0)],
    ]
    for extra in ({}, {"labels": {"a": [0, 0, 0, 1, 1, 1, 2]}, "balance": {"a": 0.0}}):
        sampler = MixedSampler({"a": 7, "b": 5}, batch_size=3, epoch_size=15, seed=4, **extra)
        sampler.set_epoch(1)
        assert list(sampler) == today
        assert "balance" not in sampler.state_dict()


def test_balance_one_draws_every_class_equally_often():
    sampler = MixedSampler(
        {"web": 100}, batch_size=30, epoch_size=3000, seed=0, labels={"web": IMBALANCED}, balance={"web": 1.0}
    )
    counts = Counter(IMBALANCED[i] for b in sampler for _, i in b)
    assert sum(counts.values()) == 3000
    # 1000 expected per class; binomial sd ~26: 4 sd of room
    assert all(abs(counts[c] - 1000) < 105 for c in range(3)), counts
    drawn = Counter(i for b in sampler for _, i in b if IMBALANCED[i] == 0)
    assert max(drawn.values()) - min(drawn.values()) <= 1  # within a class, permutations: no example twice ahead


def test_partial_balance_is_omnisources_power():
    sampler = MixedSampler(
        {"web": 100}, batch_size=40, epoch_size=8000, seed=1, labels={"web": IMBALANCED}, balance={"web": 0.5}
    )
    counts = Counter(IMBALANCED[i] for b in sampler for _, i in b)
    share = {c: n**0.5 for c, n in Counter(IMBALANCED).items()}  # class probability ∝ count^(1 - 0.5)
    total = sum(share.values())
    assert all(abs(counts[c] / 8000 - share[c] / total) < 0.02 for c in range(3)), counts


def test_balanced_resume_mid_epoch_exactly():
    kw = dict(batch_size=6, epoch_size=120, seed=2, labels={"web": IMBALANCED}, balance={"web": 1.0})
    sizes = {"web": 100, "videos": 30}
    full = MixedSampler(sizes, **kw)
    full.set_epoch(2)
    expected = list(full)
    first = MixedSampler(sizes, **kw)
    first.set_epoch(2)
    it = iter(first)
    head = [next(it) for _ in range(5)]
    state = first.state_dict()
    assert state["balance"] == {"web": 1.0}
    resumed = MixedSampler(sizes, **kw)
    resumed.load_state_dict(state)
    assert head + list(resumed) == expected
    with pytest.raises(Exception, match="balance"):
        MixedSampler(sizes, 6, 120, seed=2).load_state_dict(state)  # balancing turned off: another sequence


def test_balance_needs_one_label_per_example():
    with pytest.raises(Exception, match="needs its 100 labels"):
        MixedSampler({"web": 100}, 4, 8, labels={"web": [0, 1]}, balance={"web": 1.0})
    with pytest.raises(Exception, match=r"\[0, 1\]"):
        MixedSampler({"web": 100}, 4, 8, labels={"web": IMBALANCED}, balance={"web": 2.0})
