"""Validation under DDP: every rank evaluates a shard with rank 0's BN statistics; metrics equal one process."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import torch
from helpers.evalsets import BATCH, MODALITIES, datasets, one_thread, same_metrics, tiny_model
from helpers.nets import randomise_bn
from helpers.ranks import run_ranks

from unidual.evaluate.evaluator import evaluate
from unidual.train.distributed import DistEnv
from unidual.train.validation import validate


def _validate_on_rank(rank: int, world_size: int, state: str, out: str) -> None:
    model = tiny_model()
    model.load_state_dict(torch.load(state))
    if rank == 1:  # as after its own last training forward, or precise BN from its own batches
        torch.manual_seed(1)
        randomise_bn(model, affine=False)
    data = SimpleNamespace(test_sets=datasets(), modalities=MODALITIES)
    cfg = SimpleNamespace(
        data=SimpleNamespace(eval_batch_size=BATCH, num_workers=0), run=SimpleNamespace(progress=False)
    )
    metrics = validate(model, data, cfg, torch.device("cpu"), DistEnv(rank, world_size, rank))  # type: ignore[arg-type]
    Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps((metrics, [b.clone() for b in model.buffers()])))


def test_validation_on_two_ranks_equals_one_process_with_rank0_model(tmp_path):
    model = tiny_model()
    torch.save(model.state_dict(), tmp_path / "state.pt")
    run_ranks(_validate_on_rank, 2, tmp_path, str(tmp_path / "state.pt"), str(tmp_path))
    with one_thread():  # as each rank computes (CPU kernels split their sums by the thread count)
        want = evaluate(model, datasets(), MODALITIES, batch_size=BATCH)
    for rank in (0, 1):
        metrics, buffers = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        assert metrics.keys() == want.keys()
        for key in want:
            assert same_metrics(metrics[key], want[key]), (rank, key, metrics[key], want[key])
        assert all(torch.equal(got, b) for got, b in zip(buffers, model.buffers()))  # rank 0's statistics
