"""The training input path as a GPU job uses it: worker counts, persistent workers, one file scan."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from helpers.ranks import run_ranks
from helpers.tinydata import tiny_config
from torch.utils.data import DataLoader, Dataset

from unidual.data import formats
from unidual.data.mixing import MixedDataset, MixedSampler, collate_mixed
from unidual.ranks import DistEnv
from unidual.train import build, inputs
from unidual.train.config import load_config
from unidual.train.precision import configure_cuda


def test_num_workers_auto(monkeypatch):
    assert inputs.resolve_workers("auto", torch.device("cpu")) == 0  # the step's threads use every core
    assert inputs.resolve_workers(3, torch.device("cpu")) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert inputs.resolve_workers("auto", torch.device("cuda", 0)) == 7  # 8 cores per rank, one kept for the step
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert inputs.resolve_workers("auto", torch.device("cuda", 0)) == inputs.MAX_AUTO_WORKERS


class _Noisy(Dataset):
    """Each example is a fresh random draw, so the worker's RNG state shows in the batches."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> dict:
        return {"input": torch.rand(2), "label": os.getpid(), "source": "s", "index": i}


def test_persistent_workers_draw_what_fresh_workers_would(tmp_path):
    sampler = MixedSampler({"s": 6}, batch_size=2, epoch_size=6, seed=3)
    data = SimpleNamespace(mixed=MixedDataset({"s": _Noisy()}), sampler=sampler)
    cfg = SimpleNamespace(run=SimpleNamespace(seed=3), data=SimpleNamespace(num_workers=2))
    loader = inputs.TrainLoader(data, cfg, rank=0, device=torch.device("cpu"))
    assert loader.loader.persistent_workers and loader.workers == 2
    kept = [[b.sub["s"] for b in loader.epoch(e)] for e in range(3)]
    # the loaders the trainer used to create afresh each epoch (same private generator per epoch)
    fresh = []
    for e in range(3):
        sampler.set_epoch(e)
        gen = torch.Generator().manual_seed(3 * 100_003 + e * 101)
        fresh.append([b.sub["s"] for b in DataLoader(data.mixed, batch_sampler=sampler, collate_fn=collate_mixed,
                                                      num_workers=2, generator=gen)])  # fmt: skip
    for e in range(3):
        assert all(torch.equal(a["input"], b["input"]) for a, b in zip(kept[e], fresh[e]))
    assert not torch.equal(kept[0][0]["input"], kept[1][0]["input"])  # epochs differ
    pids = {int(p) for epoch in kept for b in epoch for p in b["label"]}
    assert len(pids) == 2  # the same two worker processes served every epoch


_POLICY = [
    (torch.backends.cudnn, "benchmark"),
    (torch.backends.cuda.matmul, "fp32_precision"),
    (torch.backends.cudnn, "fp32_precision"),
    (torch.backends.cudnn.conv, "fp32_precision"),
    (torch.backends.cudnn.rnn, "fp32_precision"),
]


def test_configure_cuda_sets_the_kernel_policy():
    before = [getattr(obj, name) for obj, name in _POLICY]
    try:
        configure_cuda(torch.device("cpu"), cudnn_benchmark=True, tf32=False)
        assert [getattr(obj, name) for obj, name in _POLICY] == before  # nothing on the CPU
        configure_cuda(torch.device("cuda", 0), cudnn_benchmark=True, tf32=False)
        assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cudnn.rnn.fp32_precision == "ieee"
        configure_cuda(torch.device("cuda", 0), cudnn_benchmark=False, tf32=True)
        assert torch.backends.cudnn.benchmark is False
        assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "tf32"
    finally:  # process-wide flags: put back exactly what was there (torch.export refuses mixed ones)
        for (obj, name), value in zip(_POLICY, before):
            setattr(obj, name, value)
        assert [getattr(obj, name) for obj, name in _POLICY] == before


def _build_and_count(rank: int, world_size: int, config: dict, out: str) -> None:
    calls = []
    real = formats.index_source

    def counting(spec, split, classes):
        calls.append((spec.key, split))
        return real(spec, split, classes)

    build.index_source = counting  # the name build_data calls
    cfg = load_config(data=config)
    data = build.build_data(cfg, DistEnv(rank, world_size, rank))
    sizes = {k: (len(data.train_sets[k]), len(data.test_sets[k])) for k in data.train_sets}
    torch.save({"calls": calls, "sizes": sizes, "classes": data.classes}, f"{out}/rank{rank}.pt")


def test_only_rank_0_lists_the_files(tiny_sources, tmp_path):
    config = tiny_config(tiny_sources)
    run_ranks(_build_and_count, 2, tmp_path, config, str(tmp_path))
    zero, one = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert sorted(zero["calls"]) == [("img", "test"), ("img", "train"), ("vid", "test"), ("vid", "train")]
    assert one["calls"] == []  # rank 1 did no file-system scan
    assert one["sizes"] == zero["sizes"] and one["classes"] == zero["classes"]


def test_the_trainer_passes_its_collective_timeout(tiny_sources, tmp_path, monkeypatch):
    from unidual.train import distributed as D
    from unidual.train.trainer import Trainer

    seen = {}
    monkeypatch.setattr(D, "setup", lambda env, device, timeout_s: seen.update(timeout_s=timeout_s))
    cfg = load_config(data=tiny_config(tiny_sources, run={"dist_timeout_s": 42}))
    Trainer(cfg, run_dir=tmp_path / "run").close()
    assert seen == {"timeout_s": 42.0}


@pytest.mark.parametrize("value", ["-1", "0"])
def test_dist_timeout_must_be_positive(tiny_sources, value):
    from unidual.yamlconfig import ConfigError

    with pytest.raises(ConfigError, match="run.dist_timeout_s"):
        load_config(data=tiny_config(tiny_sources), overrides=[f"run.dist_timeout_s={value}"])


def test_training_inputs_travel_as_uint8_and_are_normalised_on_the_device(tiny_sources):
    from unidual.data import build_dataset
    from unidual.data.transforms import normalise_batch

    cfg = load_config(data=tiny_config(tiny_sources))
    data = build.build_data(cfg, DistEnv())
    for key, ds in data.train_sets.items():
        torch.manual_seed(5)
        raw = ds[1]["input"]
        assert raw.dtype == torch.uint8  # a quarter of float32's bytes through pinned memory and PCIe
        reference = build_dataset(ds.spec, "train", normalise=True)
        torch.manual_seed(5)
        expected = reference[1]["input"]
        got = inputs.to_device({key: {"input": raw[None], "label": torch.tensor([0])}}, torch.device("cpu"), data.norms)
        assert torch.equal(got[key]["input"][0], expected)  # bit-identical to normalising in the loader
        assert torch.equal(normalise_batch(raw[None], *data.norms[key])[0], expected)
    with pytest.raises(ValueError, match="mean/std"):
        inputs.to_device({"img": {"input": raw[None], "label": torch.tensor([0])}}, torch.device("cpu"))
