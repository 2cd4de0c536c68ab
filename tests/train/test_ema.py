"""run.ema_decay: the weights' exponential moving average -- closed form, BN buffers, wrappers, exact resume."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from unidual.models import create_model
from unidual.train.ema import ModelEma, unwrap

MODS = {"img": "image", "vid": "video"}


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    # unidual: per-pathway BN branches share one scale and shift (tied parameters)
    return create_model("unidual", depth=10, width=0.125, heads={"img": 3, "vid": 4}, modalities=MODS)


def perturb(model: nn.Module, seed: int) -> None:
    """A stand-in for one optimiser update: new random weights and BN statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            else:
                b.add_(1)


def test_ema_equals_the_closed_form_after_k_steps():
    model, decay, k = tiny(), 0.9, 5
    start = copy.deepcopy(model.state_dict())
    ema = ModelEma(model, decay)
    history = []
    for step in range(k):
        perturb(model, step)
        history.append(copy.deepcopy(model.state_dict()))
        ema.update(model)
    averaged = ema.module.state_dict()
    for name, value in averaged.items():
        if value.is_floating_point():  # parameters and running statistics: d^k θ0 + Σ (1-d) d^(k-i) θ_i
            expected = decay**k * start[name] + sum(
                (1 - decay) * decay ** (k - i) * h[name] for i, h in enumerate(history, 1)
            )
            assert torch.allclose(value, expected, atol=1e-6), name
        else:
            assert torch.equal(value, history[-1][name]), name  # num_batches_tracked is copied
    assert ema.updates == k
    tied = [n for n in averaged if ".norm.image.weight" in n]
    assert tied  # the shared BN scale was averaged once, not once per name (the closed form above holds)


def test_copy_buffers_take_the_raw_models_statistics():
    model = tiny()
    ema = ModelEma(model, 0.5, buffers="copy")
    perturb(model, 0)
    ema.update(model)
    raw = dict(model.named_buffers())
    assert all(torch.equal(b, raw[n]) for n, b in ema.module.named_buffers())
    assert not torch.equal(
        dict(ema.module.named_parameters())["heads.img.weight"], dict(model.named_parameters())["heads.img.weight"]
    )


def test_resume_continues_bit_exactly():
    model = tiny()
    ema = ModelEma(model, 0.99)
    for step in range(3):
        perturb(model, step)
        ema.update(model)
    saved = copy.deepcopy(ema.state_dict())
    resumed = ModelEma(tiny(seed=1), 0.99)  # another model's copy: everything comes from the state
    resumed.load_state_dict(saved)
    for step in range(3, 6):
        perturb(model, step)
        ema.update(model)
        resumed.update(model)
    a, b = ema.module.state_dict(), resumed.module.state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a) and resumed.updates == ema.updates == 6
    with pytest.raises(ValueError, match="decay"):
        ModelEma(model, 0.9).load_state_dict(saved)


def test_wrapped_models_are_unwrapped():
    model = tiny()
    assert unwrap(nn.DataParallel(model)) is model
    assert unwrap(torch.compile(model)) is model  # lazily compiled: nothing runs here
    ema = ModelEma(nn.DataParallel(model), 0.5)
    assert not isinstance(ema.module, nn.DataParallel) and not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    perturb(model, 0)
    ema.update(nn.DataParallel(model))
    expected = (
        0.5 * dict(tiny().named_parameters())["heads.vid.bias"] + 0.5 * dict(model.named_parameters())["heads.vid.bias"]
    )
    assert torch.allclose(dict(ema.module.named_parameters())["heads.vid.bias"], expected)


def test_bad_decay_rejected():
    with pytest.raises(ValueError, match="decay"):
        ModelEma(tiny(), 0.0)


def test_a_ddp_wrapped_model_is_unwrapped(tmp_path):
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = tiny()
        ddp = nn.parallel.DistributedDataParallel(model)
        ema = ModelEma(ddp, 0.5)
        assert unwrap(ddp) is model and set(ema.module.state_dict()) == set(model.state_dict())
        perturb(model, 0)
        ema.update(ddp)
        start = dict(tiny().named_parameters())["heads.img.weight"]
        expected = 0.5 * start + 0.5 * dict(model.named_parameters())["heads.img.weight"]
        assert torch.allclose(dict(ema.module.named_parameters())["heads.img.weight"], expected)
    finally:
        dist.destroy_process_group()
