"""Collectives as NCCL sees them, without a GPU.

NCCL has no CPU backend: a collective on a CPU tensor fails (``No backend type associated with
device type cpu``). torch's fake process group, registered for CUDA only, behaves the same on this
machine, and ``FakeTensorMode`` gives "cuda" tensors without a GPU; together they check that the
trainer's per-update agreement works under a group without a CPU backend -- the path every
multi-GPU run takes at its first step.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from helpers.tinydata import tiny_config
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.testing._internal.distributed.fake_pg import FakeStore

from unidual.train import distributed as D
from unidual.train.config import load_config
from unidual.train.trainer import Trainer


@pytest.fixture
def cuda_only_group():
    """A 2-rank fake process group with a backend for CUDA tensors only, like NCCL."""
    dist.init_process_group("cuda:fake", store=FakeStore(), rank=0, world_size=2)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_a_cuda_only_group_refuses_cpu_tensors_as_nccl_does(cuda_only_group):
    # what the trainer did before: its per-step flags were CPU tensors -> every multi-GPU run died here
    with pytest.raises(RuntimeError, match="No backend type associated with device type cpu"):
        D.all_reduce_sum(torch.tensor([1.0]))


def test_per_update_flags_reduce_on_the_training_device_under_a_cuda_only_group(cuda_only_group):
    cuda = torch.device("cuda", 0)
    with FakeTensorMode(allow_non_fake_inputs=True):
        loss = torch.ones((), device=cuda)  # a training step's loss, on the GPU
        flags = [False, loss.isnan(), True, torch.zeros((), device=cuda)]  # host and device flags
        vec = D.flag_vector(flags, cuda)
        assert vec.device == cuda and vec.shape == (4,)
        assert D.reduce_flags(vec).device == cuda  # accepted by the CUDA-only group


def test_object_collectives_and_cpu_flags_still_work_for_one_process():
    assert not dist.is_initialized()
    assert D.any_rank([False, True, torch.tensor(True), torch.tensor(0.0)], torch.device("cpu")) == [
        False,
        True,
        True,
        False,
    ]
    assert D.main_then_agree(lambda: 41 + 1, (RuntimeError,)) == 42
    with pytest.raises(KeyError, match="boom"):

        def fail() -> None:
            raise KeyError("boom")

        D.main_then_agree(fail, (KeyError,))


def test_each_update_agrees_once_on_the_training_device(tiny_sources, tmp_path, monkeypatch):
    """Every per-update decision of the trainer goes through one ``any_rank`` call on its device."""
    cfg = load_config(data=tiny_config(tiny_sources, optim={"accumulate": 2}, run={"eval_every": 0}))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    calls: list[torch.device] = []
    real = D.any_rank

    def spy(flags, device):
        calls.append(device)
        return real(flags, device)

    monkeypatch.setattr(D, "any_rank", spy)
    raw = D.all_reduce_sum
    monkeypatch.setattr(D, "all_reduce_sum", lambda t: pytest.fail(f"a raw all-reduce of a {t.device} tensor"))
    result = trainer.fit()
    monkeypatch.setattr(D, "all_reduce_sum", raw)
    assert result.global_step == len(calls) == trainer.total_updates  # one agreement per update, none per micro-step
    assert set(calls) == {trainer.device}
