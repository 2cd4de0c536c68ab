"""At most 2 host synchronisations per optimizer step of the training loop.

A GPU only runs ahead of the host while the host does not wait for it; every ``.item()``,
data-dependent shape or device->host copy drains its queue. ``SyncCounter`` counts those
operations on any device, so the budget holds here on the CPU for the code the GPU will run: the
micro-steps, the update (one agreement of the per-update flags) and the metrics record (one read
of the statistics accumulated on the device, every ``run.log_every`` updates).
"""

from __future__ import annotations

import pytest
from helpers.tinydata import tiny_config

from unidual.train.config import load_config
from unidual.train.syncs import SyncCounter
from unidual.train.trainer import Trainer

BUDGET = 2


def _count_per_update(trainer: Trainer, monkeypatch, host_reads: bool) -> list[int]:
    """Syncs of each optimizer update: its micro-steps, the update itself and its metrics record."""
    per_update: list[int] = [0]

    def counted(name: str, slot: int, closes_update: bool = False):
        real = getattr(trainer, name)

        def run(*args, **kwargs):
            with SyncCounter(host_reads=host_reads) as syncs:
                out = real(*args, **kwargs)
            per_update[slot] += syncs.total
            if closes_update:
                per_update.append(0)
            return out

        monkeypatch.setattr(trainer, name, run)

    counted("_micro_step", -1)
    counted("_update", -1, closes_update=True)
    counted("_log_window", -2)  # written after the update it reports on closed: counts toward that one
    trainer.fit()
    return per_update[:-1]  # the slot opened after the last update


@pytest.mark.parametrize("routing", ["both", "random"])
def test_unidual_aux_update_stays_within_the_sync_budget(tiny_sources, tmp_path, monkeypatch, routing):
    cfg = load_config(
        data=tiny_config(
            tiny_sources,
            optim={"accumulate": 2},
            aux={"routing": routing},
            run={"log_every": 1, "eval_every": 0},
        )
    )
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    # random routing reads its CPU-drawn mask with tolist(): on a GPU that mask never leaves the
    # host, so the host-read counting (which stands in for device->host copies here) is off for it
    counts = _count_per_update(trainer, monkeypatch, host_reads=routing == "both")
    assert len(counts) >= trainer.total_updates
    assert max(counts) <= BUDGET, counts
    assert sum(counts) >= trainer.total_updates  # the flag agreement is one read per update: counted
