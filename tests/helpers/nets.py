"""Networks for tests: the benchmark's plain-PyTorch reference, and BN made non-trivial."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch

REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "reference.py"


def load_reference() -> ModuleType:
    """benchmarks/reference.py (torchvision's VideoResNet topology in plain PyTorch), loaded by path."""
    spec = importlib.util.spec_from_file_location("unidual_benchmark_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # benchmarks/ is not a package
    return module


def randomise_bn(model: torch.nn.Module, affine: bool = True) -> torch.nn.Module:
    """Non-trivial BN statistics (and scale/shift), so a wrong BN mapping or eps cannot hide behind identity BNs."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                if affine and m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
    return model
