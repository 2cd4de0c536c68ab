"""``run.compile``: torch.compile for the training step, without the waits and without dead runs.

Three rules make compiling usable on a small machine (docs/performance.md, "torch.compile"):

* **On-disk caches.** Inductor's FX-graph and AOTAutograd caches are switched on and kept in a
  persistent folder (``$TORCHINDUCTOR_CACHE_DIR`` if set, else ``~/.cache/unidual/inductor``),
  so a second or resumed run of the same shapes loads its kernels instead of compiling them.
* **Compile what repeats.** A training input shape is compiled the second time it is seen; a
  shape seen once (a batch shrunk by an unreadable file, a last partial batch) runs eager, and
  so does everything outside training (validation, precise BN and evaluation call the plain
  model). At most ``max_shapes`` shapes are compiled; later new shapes run eager. No
  recompile storms, no guard-limit fallbacks.
* **Never a dead run.** A compile error (dynamo, AOTAutograd, inductor, a missing C++
  compiler) switches the run to eager for good, with one warning.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from unidual.compat import require_torch
from unidual.models import ImageVideoNet

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
MIN_TORCH = "2.7"  # torch._dynamo.config.recompile_limit (cache_size_limit before); AOTAutograd's cache: 2.4
COMPILE_ERRORS: tuple[type[BaseException], ...] = (torch._dynamo.exc.TorchDynamoException,)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/unidual/inductor`` (``~/.cache/...``): survives reboots, unlike torch's /tmp default."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unidual" / "inductor"


def enable_compile_caches() -> Path:
    """Turn on inductor's on-disk caches (FX graphs, AOTAutograd) and return the folder they use."""
    require_torch(MIN_TORCH, "run.compile")
    os.environ.setdefault(CACHE_ENV, str(default_cache_dir()))
    torch._inductor.config.fx_graph_cache = True
    torch._functorch.config.enable_autograd_cache = True
    return Path(os.environ[CACHE_ENV])


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error: dynamo wraps a backend's own exception (inner_exception / __cause__)."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def is_compile_error(exc: BaseException) -> bool:
    return isinstance(exc, COMPILE_ERRORS)


class CompiledModel(nn.Module):
    """Calls ``model`` compiled for repeating training shapes, eager otherwise (see the module doc).

    Holds ``model`` as its only submodule, so parameters are shared and nothing is duplicated;
    checkpoints keep saving the plain model.
    """

    _compiled: Callable[..., Any]  # torch.compile(model), set past nn.Module's registry (see __init__)

    def __init__(
        self,
        model: ImageVideoNet,
        *,
        backend: str | Callable[..., Any] = "inductor",
        max_shapes: int = 8,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        require_torch(MIN_TORCH, "run.compile")
        self.model = model
        self.max_shapes = max_shapes
        self.seen: dict[tuple[Any, ...], int] = {}
        self.compiled_shapes: set[tuple[Any, ...]] = set()
        self.failure: str | None = None
        self._warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
        # static shapes: one graph per shape (inductor failed on the aux step's dynamic graphs, see
        # docs/performance.md); the guard limit is raised so our own cap is the one that applies
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * max_shapes + 2)
        compiled = torch.compile(model, dynamic=False, backend=backend)
        object.__setattr__(self, "_compiled", compiled)  # not a submodule: no second set of state_dict keys

    @property
    def active(self) -> bool:
        return self.failure is None

    def disable(self, exc: BaseException) -> None:
        """Run eager from now on; one warning with the error's first line."""
        if self.failure is None:
            root = _root_cause(exc)
            text = str(root).strip()
            self.failure = f"{type(root).__name__}: {text.splitlines()[0] if text else '(no message)'}"
            self._warn(f"run.compile: compiling failed ({self.failure[:300]}); training continues eager")

    # what the objective asks of the model it trains
    @property
    def pathways(self) -> tuple[str, ...]:
        return tuple(self.model.pathways)

    def head_for(self, key: str, pathway: str) -> str:
        return self.model.head_for(key, pathway)

    def _key(self, x: Tensor, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        return (tuple(x.shape), x.dtype, x.device.type, tuple(sorted((k, str(v)) for k, v in kwargs.items())))

    def forward(self, x: Tensor, **kwargs: Any) -> Any:
        if not self.training or self.failure is not None:
            return self.model(x, **kwargs)
        key = self._key(x, kwargs)
        if key not in self.compiled_shapes:
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] < 2 or len(self.compiled_shapes) >= self.max_shapes:
                return self.model(x, **kwargs)
            self.compiled_shapes.add(key)
        try:
            return self._compiled(x, **kwargs)
        except COMPILE_ERRORS as exc:
            self.disable(exc)
            return self.model(x, **kwargs)
