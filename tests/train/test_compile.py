"""run.compile: compiled where shapes repeat, eager elsewhere, eager for good after a compile error, cached kernels."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers.tinydata import tiny_config
from torch import nn

from unidual.train import compiled as C
from unidual.train.config import load_config
from unidual.train.trainer import Trainer


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, pathway: str | None = None) -> dict[str, torch.Tensor]:
        return {"k": self.lin(x).relu()}

    def head_for(self, key: str, pathway: str) -> str:
        return key


class _Counting:
    """A torch.compile backend that counts the graphs it is given and runs them as traced."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1
        return gm.forward


def _failing(gm: torch.fx.GraphModule, example_inputs: list) -> object:
    raise RuntimeError("no C++ compiler here")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_a_shape_compiles_the_second_time_it_is_seen_and_only_in_training():
    backend = _Counting()
    net = C.CompiledModel(_Net(), backend=backend)
    x = torch.randn(5, 4)
    net(x)
    assert backend.graphs == 0  # seen once: eager (a shrunk or last partial batch never compiles)
    net(x)
    net(x)
    assert backend.graphs == 1 and len(net.compiled_shapes) == 1
    net(torch.randn(3, 4))
    assert backend.graphs == 1  # a new shape, first time: eager
    net.eval()
    for _ in range(3):
        net(torch.randn(7, 4))
    assert backend.graphs == 1  # validation-style calls never compile
    torch.testing.assert_close(net(x)["k"], net.model(x)["k"])


def test_at_most_max_shapes_are_compiled():
    backend = _Counting()
    net = C.CompiledModel(_Net(), backend=backend, max_shapes=2)
    for n in (2, 3, 4, 5):
        for _ in range(3):
            net(torch.randn(n, 4))
    assert backend.graphs == 2 and len(net.compiled_shapes) == 2


def test_a_compile_error_falls_back_to_eager_once_with_one_warning():
    warnings: list[str] = []
    net = C.CompiledModel(_Net(), backend=_failing, warn=warnings.append)
    x = torch.randn(5, 4)
    outs = [net(x)["k"] for _ in range(4)]
    assert len(warnings) == 1 and "no C++ compiler here" in warnings[0] and not net.active
    torch.testing.assert_close(outs[-1], net.model(x)["k"])


def test_the_module_has_the_plain_models_keys_once():
    net = C.CompiledModel(_Net(), backend=_Counting())
    assert list(net.state_dict()) == ["model.lin.weight", "model.lin.bias"]
    assert len(list(net.parameters())) == 2


def test_caches_go_to_a_persistent_folder_unless_the_user_chose_one(monkeypatch, tmp_path):
    monkeypatch.delenv(C.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.enable_compile_caches() == tmp_path / "xdg" / "unidual" / "inductor"
    assert torch._inductor.config.fx_graph_cache and torch._functorch.config.enable_autograd_cache
    monkeypatch.setenv(C.CACHE_ENV, str(tmp_path / "mine"))
    assert C.enable_compile_caches() == tmp_path / "mine"


def _trainer(tiny_sources, tmp_path, name: str, backend: object, steps: int = 4) -> Trainer:
    cfg = load_config(
        data=tiny_config(
            tiny_sources, run={"max_steps": steps, "eval_every": 1, "compile": True}, schedule={"epochs": 1}
        )
    )
    trainer = Trainer(cfg, run_dir=tmp_path / name)
    assert trainer.compiled is not None
    trainer.compiled._compiled = torch.compile(trainer.model, dynamic=False, backend=backend)
    return trainer


def test_trainer_compiles_the_repeating_training_shapes_and_validates_eager(tiny_sources, tmp_path):
    backend = _Counting()
    trainer = _trainer(tiny_sources, tmp_path, "counted", backend)
    assert trainer.train_module.model is trainer.compiled and trainer.compiled.model is trainer.model
    assert not any(k.startswith(("_orig_mod", "model.")) for k in trainer.model.state_dict())
    trainer.fit()
    assert trainer.global_step == 4 and set(trainer.last_metrics) == {"img", "vid"}
    # UniDual-Aux passes: video (clips + static clips) and image (images + frames), same shapes every step
    assert len(trainer.compiled.compiled_shapes) == 2 and backend.graphs == 2


def test_trainer_survives_a_compile_error(tiny_sources, tmp_path, capsys):
    trainer = _trainer(tiny_sources, tmp_path, "failing", _failing)
    trainer.fit()
    assert trainer.global_step == 4 and not trainer.compiled.active
    assert capsys.readouterr().err.count("run.compile: compiling failed") == 1


@pytest.mark.slow
def test_inductor_kernels_are_loaded_from_the_cache_by_a_second_process(tmp_path):
    """Two fresh processes compile the same small conv step with inductor; the second hits the cache."""
    script = textwrap.dedent("""
        import torch
        from torch._dynamo.utils import counters
        from unidual.train.compiled import CompiledModel, enable_compile_caches
        from unidual.models import create_model
        enable_compile_caches()
        model = create_model("unidual", depth=10, width=0.125, heads={"img": 3, "vid": 3},
                         modalities={"img": "image", "vid": "video"}, frames=4)
        net = CompiledModel(model)
        x = torch.randn(2, 3, 4, 16, 16)
        for _ in range(2):
            net(x, pathway="video")["vid"].sum().backward()
        print("HITS", counters["inductor"]["fxgraph_cache_hit"], "MISSES", counters["inductor"]["fxgraph_cache_miss"])
    """)
    env = {**os.environ, C.CACHE_ENV: str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
        for _ in range(2)
    ]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    first, second = (r.stdout.split("HITS")[-1].split() for r in runs)
    assert int(first[2]) > 0 and int(first[0]) == 0  # compiled (forward and backward graphs)
    assert int(second[0]) > 0 and int(second[2]) == 0  # loaded from the cache, nothing compiled again


@pytest.mark.slow
def test_inductor_step_equals_the_eager_step():
    """The real backend on the tiny UniDual model, both pathways: same logits and gradients as eager.

    In float64: train-mode BatchNorm on a 2-clip batch amplifies float32 rounding (see
    docs/performance.md on channels-last BN), which would hide a real difference in the noise."""
    from unidual.models import create_model

    torch.manual_seed(0)
    model = create_model(
        "unidual",
        depth=10,
        width=0.125,
        heads={"img": 3, "vid": 3},
        modalities={"img": "image", "vid": "video"},
        frames=4,
    ).double()
    net = C.CompiledModel(model)
    inputs = {
        "video": torch.randn(2, 3, 4, 16, 16, dtype=torch.float64),
        "image": torch.randn(3, 3, 16, 16, dtype=torch.float64),
    }

    def step(call) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        model.zero_grad()
        logits = {p: call(x, pathway=p)["vid" if p == "video" else "img"] for p, x in inputs.items()}
        sum(v.square().sum() for v in logits.values()).backward()
        return (
            {p: v.detach() for p, v in logits.items()},
            {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None},
        )

    for _ in range(2):
        compiled = step(net)  # the second call of each shape runs compiled
    eager = step(model)
    assert len(net.compiled_shapes) == 2 and net.active
    for got, want in zip(compiled, eager):
        assert got.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-7, atol=1e-9, msg=k)
