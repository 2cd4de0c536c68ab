"""LR schedules: warm-up then step decay / cosine, per iteration; linear LR scaling."""

from __future__ import annotations

import math

import pytest
import torch

from unidual.train.schedule import WarmupDecay, build_schedule, make_scheduler, scaled_lr, steps_per_epoch


def test_paper_step_schedule_in_epochs():
    # 45 epochs, 10 warm-up, then /10 every 10 epochs; 4 updates per epoch.
    f = build_schedule(epochs=45, warmup_epochs=10, kind="step", step_epochs=10, gamma=0.1, steps_per_epoch=4)
    assert f.total_steps == 180 and f.warmup_steps == 40
    warm = [f(s) for s in range(40)]
    assert all(b > a for a, b in zip(warm, warm[1:]))  # strictly increasing, linear
    assert warm[0] > 0 and warm[-1] < 1
    assert f(40) == pytest.approx(1.0) and f(79) == pytest.approx(1.0)  # epochs 10-19
    assert f(80) == pytest.approx(0.1) and f(120) == pytest.approx(0.01) and f(179) == pytest.approx(0.001)


def test_cosine_schedule_endpoints():
    f = build_schedule(
        epochs=45, warmup_epochs=10, kind="cosine", step_epochs=1, gamma=0.1, steps_per_epoch=2, min_lr_factor=0.0
    )
    assert f(20) == pytest.approx(1.0)
    mid = 20 + 35
    assert f(mid) == pytest.approx(0.5 + 0.5 * math.cos(math.pi * 35 / 70))
    assert f(89) < 0.01
    values = [f(s) for s in range(20, 90)]
    assert all(b <= a for a, b in zip(values, values[1:]))


def test_scaling_rule_and_steps():
    assert scaled_lr(0.01, 1024, 1024) == pytest.approx(0.01)
    assert scaled_lr(0.01, 64, 1024) == pytest.approx(0.000625)
    assert scaled_lr(0.1, 8, None) == 0.1
    assert steps_per_epoch(1000, 16) == 63 and steps_per_epoch(5, 16) == 1


def test_scheduler_drives_optimizer_and_state_roundtrips():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = make_scheduler(opt, WarmupDecay(total_steps=10, warmup_steps=2, kind="step", step_size=3, gamma=0.5))
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:2] == pytest.approx([0.5 / 3, 1.0 / 3]) and lrs[2:5] == pytest.approx([0.5] * 3)
    assert lrs[5:8] == pytest.approx([0.25] * 3)
    state = sched.state_dict()
    opt2 = torch.optim.SGD([p], lr=0.5)
    sched2 = make_scheduler(opt2, WarmupDecay(total_steps=10, warmup_steps=2))
    sched2.load_state_dict(state)
    assert sched2.lr_lambdas[0].step_size == 3 and sched2.get_last_lr() == sched.get_last_lr()


def test_bad_schedule_rejected():
    with pytest.raises(ValueError, match="kind"):
        WarmupDecay(total_steps=10, kind="linear")
    with pytest.raises(ValueError, match="warmup"):
        WarmupDecay(total_steps=10, warmup_steps=11)
