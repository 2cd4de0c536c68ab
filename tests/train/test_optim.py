"""The optimiser builder: today's SGD by default; AdamW, no decay on norms/biases, backbone LR multiplier."""

from __future__ import annotations

import copy

import pytest
import torch

from unidual.models import create_model
from unidual.train.optim import build_optimizer, head_parameters, param_groups, reported_lr
from unidual.train.schedule import WarmupDecay, make_scheduler

MODS = {"img": "image", "vid": "video"}


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("unidual", depth=10, width=0.125, heads={"img": 3, "vid": 4}, modalities=MODS)


def step_with_random_grads(model, optimizer, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)
    optimizer.step()


def heads(model) -> list[str]:
    return [n for n, _ in model.named_parameters() if n.startswith("heads.")]


def test_head_parameters_are_what_a_finetune_start_leaves_at_init():
    from unidual.models.surgery import load_backbone

    model = tiny()
    left = load_backbone(model, tiny(seed=1).state_dict())
    assert set(head_parameters(model)) == set(left) == set(heads(model))
    lstm = create_model("r2d_lstm_multitask", depth=10, width=0.125, heads={"img": 3}, lstm_hidden=8)
    assert any(n.startswith("temporal.") for n in head_parameters(lstm))


def test_default_is_todays_sgd_exactly():
    a, b = tiny(), tiny()
    ours = build_optimizer(a, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    theirs = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    assert type(ours) is torch.optim.SGD and ours.state_dict()["param_groups"] == theirs.state_dict()["param_groups"]
    for _ in range(3):
        step_with_random_grads(a, ours)
        step_with_random_grads(b, theirs)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert str(ours.state_dict()) == str(theirs.state_dict())


def test_no_decay_on_norms_and_biases():
    model = tiny()
    groups = param_groups(model, lr=0.1, weight_decay=0.5, decay_norm_and_bias=False)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in groups}
    named = dict(model.named_parameters())
    assert by_decay[0.0] == {id(p) for n, p in named.items() if p.ndim <= 1}  # BN scale/shift, head biases
    assert by_decay[0.5] == {id(p) for n, p in named.items() if p.ndim > 1}
    optimizer = build_optimizer(model, lr=0.1, momentum=0.0, weight_decay=0.5, decay_norm_and_bias=False)
    before = {n: p.detach().clone() for n, p in named.items()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # zero gradients: only weight decay moves a parameter
    for n, p in named.items():
        moved = not torch.equal(p, before[n])
        assert moved == (p.ndim > 1 and bool(before[n].abs().sum() > 0)), n


def test_backbone_lr_mult_keeps_its_ratio_through_the_schedule():
    model = tiny()
    optimizer = build_optimizer(model, lr=0.2, backbone_lr_mult=0.1, new_params=heads(model))
    lrs = sorted({g["lr"] for g in optimizer.param_groups})
    assert lrs == pytest.approx([0.02, 0.2])
    new = {id(p) for n, p in model.named_parameters() if n.startswith("heads.")}
    for g in optimizer.param_groups:
        assert all((id(p) in new) == (g["lr_mult"] == 1.0) for p in g["params"])
    scheduler = make_scheduler(optimizer, WarmupDecay(total_steps=20, warmup_steps=4, kind="cosine"))
    for step in range(7):
        step_with_random_grads(model, optimizer, step)
        scheduler.step()
        factor = WarmupDecay(total_steps=20, warmup_steps=4, kind="cosine")(step + 1)
        for g in optimizer.param_groups:
            assert g["lr"] == pytest.approx(0.2 * g["lr_mult"] * factor)
        assert reported_lr(optimizer) == pytest.approx(0.2 * factor)


def test_groups_resume_from_a_state_dict():
    a, b = tiny(), tiny()
    kw = dict(lr=0.1, weight_decay=1e-4, decay_norm_and_bias=False, backbone_lr_mult=0.5)
    first = build_optimizer(a, new_params=heads(a), **kw)
    step_with_random_grads(a, first)
    b.load_state_dict(a.state_dict())
    second = build_optimizer(b, new_params=heads(b), **kw)
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as read back from a checkpoint
    step_with_random_grads(a, first, 5)
    step_with_random_grads(b, second, 5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_adamw_with_betas():
    model = tiny()
    optimizer = build_optimizer(model, name="adamw", lr=1e-3, weight_decay=0.05, betas=(0.8, 0.95))
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.95) and optimizer.param_groups[0]["weight_decay"] == 0.05
    step_with_random_grads(model, optimizer)


def test_bad_settings_rejected():
    model = tiny()
    with pytest.raises(ValueError, match="sgd"):
        build_optimizer(model, name="lamb", lr=0.1)
    with pytest.raises(ValueError, match="new .head. parameters"):
        build_optimizer(model, lr=0.1, backbone_lr_mult=0.1)
    with pytest.raises(ValueError, match="no parameter"):
        build_optimizer(model, lr=0.1, backbone_lr_mult=0.1, new_params=["heads.nope.weight"])
