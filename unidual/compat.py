"""Which torch a feature needs: refuse it in one line on an older torch instead of failing deep inside.

``pyproject.toml`` declares the torch the core needs (training and evaluation in fp32 / bf16,
CPU and CUDA); a few features use newer APIs and call :func:`require_torch` where they start
(docs/install.md lists them): ``run.compile`` (torch >= 2.7: ``torch._dynamo.config.recompile_limit``),
``run.amp=fp16`` (2.3: ``torch.amp.GradScaler(device)``), ``unidual export --format onnx``
(2.5: ``torch.onnx.export(dynamo=False)``).
"""

from __future__ import annotations

import re

import torch

from unidual.yamlconfig import ConfigError


class TorchVersionError(ConfigError):
    """A feature asked for needs a newer torch (a ConfigError: every command prints it in one line)."""


def torch_version(text: str | None = None) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of ``torch.__version__`` (``2.7.0+cu126``, ``2.8.0a0+git1234``, ``2.9.0.dev20250801``)."""
    text = torch.__version__ if text is None else text
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if match is None:
        raise ValueError(f"cannot read a version from torch.__version__ = {text!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def require_torch(minimum: str, feature: str) -> None:
    """Raise :class:`TorchVersionError` naming ``feature`` unless torch >= ``minimum`` (e.g. ``"2.7"``)."""
    if torch_version() < torch_version(minimum):
        raise TorchVersionError(
            f"{feature} needs torch >= {minimum}, this is torch {torch.__version__}; upgrade torch or turn {feature} off"
        )


__all__ = ["TorchVersionError", "require_torch", "torch_version"]
