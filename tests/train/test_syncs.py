"""SyncCounter (unidual/train/syncs.py): which ops make the host wait, counted on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from unidual.train.syncs import SyncCounter


def test_counts_every_kind_of_host_wait():
    x = torch.randn(10)
    mask = x > 0
    with SyncCounter() as syncs:
        x.sum().item()
        float(x.max())
        int(x.argmax())
        if x.sum() > -100:  # bool(tensor)
            pass
        x[mask]
        mask.nonzero()
        torch.where(mask)  # one-argument where is nonzero
        x.masked_select(mask)
        torch.equal(x, x)
        torch.unique(x)
        x.tolist()
        np.asarray(x)
    assert syncs.by_op == {
        "aten::_local_scalar_dense": 4,
        "aten::index.Tensor(bool mask)": 1,
        "aten::nonzero": 2,
        "aten::masked_select": 1,
        "aten::equal": 1,
        "aten::_unique2": 1,
        "Tensor.tolist": 1,
        "Tensor.__array__": 1,
    }
    assert syncs.total == 12


def test_device_work_without_a_host_read_is_not_counted():
    x, idx = torch.randn(4, 8), torch.tensor([0, 2])
    with SyncCounter(host_reads=False) as syncs:
        x[idx] * 2  # integer indexing: the output size is known
        torch.where(x > 0, x, 0.0)  # three-argument where: no sync
        (x > 0).any()  # stays a tensor
        x.to(torch.float64)
        torch.cat([x, x]).mean(0)
        x.tolist()  # host_reads=False: not counted
    assert syncs.total == 0, syncs.summary()


def test_device_to_host_copies_are_counted_on_fake_cuda_tensors():
    with FakeTensorMode():
        g = torch.empty(3, device="cuda")
        host = torch.empty(3)
        with SyncCounter() as syncs:
            g.cpu()
            g.to("cpu", non_blocking=True)
            host.copy_(g)
            g * 2
            host.clone()
    assert syncs.by_op == {"aten::_to_copy(device->host)": 2, "aten::copy_(device->host)": 1}


def test_stacks_name_the_calling_line_and_reset():
    x = torch.randn(3)
    with SyncCounter(stacks=True) as syncs:
        x.sum().item()
    (where,) = [w for (op, w) in syncs.where]
    assert where.startswith("test_syncs.py:")
    assert "1 x aten::_local_scalar_dense" in syncs.summary()
    syncs.reset()
    assert syncs.total == 0 and syncs.summary() == "no host synchronisations"


@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_autocast_casts_are_not_syncs(amp):
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    with SyncCounter() as syncs, torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        conv(x).float().sum().backward()
    assert syncs.total == 0
