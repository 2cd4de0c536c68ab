"""Sharded evaluation over 2 gloo ranks equals one process exactly (scores, skips, every metric)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.evalsets import BATCH, MODALITIES, Synthetic, datasets, one_thread, same_metrics, tiny_model
from helpers.ranks import run_ranks

from unidual.cli import main as cli
from unidual.evaluate.evaluator import SourceResult, evaluate, evaluate_sources
from unidual.evaluate.shards import BatchRecord, loader_batches, merge, shard


def _evaluate_on_rank(rank: int, world_size: int, state: str, out: str) -> None:
    model = tiny_model()
    model.load_state_dict(torch.load(state))
    data = datasets()
    results = evaluate_sources(model, data, MODALITIES, batch_size=BATCH, distributed=True)
    metrics = evaluate(model, data, MODALITIES, batch_size=BATCH, distributed=True)
    Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps((results, metrics)))


def assert_same_result(got: SourceResult, want: SourceResult) -> None:
    for name in ("scores", "single_view", "labels", "indices"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert got.skipped == want.skipped
    assert (got.classes, got.views, got.modality) == (want.classes, want.views, want.modality)
    assert torch.equal(got.confusion(), want.confusion())
    assert same_metrics(got.metrics(), want.metrics()), (got.metrics(), want.metrics())
    assert same_metrics(got.per_class(), want.per_class())
    for metric, hits in want.per_example().items():
        assert torch.equal(got.per_example()[metric], hits), metric


def test_two_gloo_ranks_equal_one_process(tmp_path):
    model = tiny_model()
    torch.save(model.state_dict(), tmp_path / "state.pt")
    run_ranks(_evaluate_on_rank, 2, tmp_path, str(tmp_path / "state.pt"), str(tmp_path))
    with one_thread():  # as each rank computes: CPU kernels split their sums by the thread count
        single = evaluate_sources(model, datasets(), MODALITIES, batch_size=BATCH)
        single_metrics = evaluate(model, datasets(), MODALITIES, batch_size=BATCH)
    # the data really exercises what is claimed: uneven shards, skips on both ranks, an idle rank
    assert [r.indices.tolist() for r in single.values()] == [[0, 1, 3, 4], [0, 1, 2, 3, 4, 5], [0], []]
    assert len(single["clips"].skipped) == len(single["imgs"].skipped) == 1
    assert 0 < single["clips"].metrics()["clip@1"] < 100 or single["clips"].metrics()["nll"] > 0
    for rank in (0, 1):
        results, metrics = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        assert results.keys() == single.keys()
        for key in single:
            assert_same_result(results[key], single[key])
            assert same_metrics(metrics[key], single_metrics[key])


def _fail_on_rank(rank: int, world_size: int, out: str) -> None:
    """A head/label-map mismatch on the one rank that has examples; the idle rank must not wait forever."""
    model = tiny_model()
    wrong = Synthetic(1, "image", 5, seed=3)  # 5 classes, the head "one" has 4
    try:
        evaluate_sources(model, {"one": wrong}, MODALITIES, batch_size=BATCH, distributed=True)
    except Exception as exc:
        Path(out, f"rank{rank}.txt").write_text(f"{type(exc).__name__}: {exc}")


def test_an_error_on_one_rank_raises_on_every_rank(tmp_path):
    run_ranks(_fail_on_rank, 2, tmp_path, str(tmp_path), timeout_s=60)
    first = (tmp_path / "rank0.txt").read_text()
    assert first.startswith("ValueError: source 'one': head 'one' has 4 classes but the label map has 5")
    second = (tmp_path / "rank1.txt").read_text()
    assert second.startswith("RuntimeError: evaluating source 'one' failed on rank 0: ValueError: source 'one'")


def test_batches_shard_round_robin_and_merge_back_in_order():
    batches = loader_batches(5, 2)
    assert batches == [[0, 1], [2, 3], [4]]
    assert shard(batches, 0, 2) == [(0, [0, 1]), (2, [4])]
    assert shard(batches, 1, 2) == [(1, [2, 3])]
    assert shard(loader_batches(1, 2), 1, 2) == []  # a source smaller than the world: an idle rank
    assert loader_batches(3, 0) == [[0], [1], [2]]  # an example with more views than a forward holds
    records = [[BatchRecord(n) for n in (0, 2)], [BatchRecord(1)]]
    assert [r.number for r in merge(records)] == [0, 1, 2]
    with pytest.raises(RuntimeError, match="lost or repeated"):
        merge([[BatchRecord(0)], [BatchRecord(2)]])
    with pytest.raises(ValueError, match="outside world size"):
        shard(batches, 2, 2)


PROJECT = Path(__file__).resolve().parents[2]


def test_eval_under_torchrun_equals_one_process(tiny_run, tmp_path, capsys):
    """`torchrun --nproc_per_node=2 -m unidual eval RUN`: rank 0 writes the one-process reports."""
    args = ["eval", str(tiny_run["run"]), "--json", "--batch-size", "3", "--device", "auto"]  # 2 + 4 batches
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "unidual"]
    two = subprocess.run(
        [*launcher, *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300
    )
    assert two.returncode == 0, two.stderr[-3000:]
    with one_thread():
        assert cli([*args, "--out", str(tmp_path / "one")]) == 0
    one = json.loads(capsys.readouterr().out)
    assert json.loads(two.stdout) == one  # one table on stdout: rank 1 printed nothing
    assert one["shapes"]["examples"] == 6 and one["moves"]["examples"] == 4
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in files:
        if not name.endswith(".png"):  # metrics.json, per-class and confusion CSVs
            assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text(), name
