"""Count the operations that make the host wait for the GPU, on any device (the CPU included).

A CUDA kernel launch returns at once; the host only waits when it needs a value *from* the
device: a Python number (``.item()``, ``float(t)``, ``bool(t)``, ``int(t)``), an output whose
size depends on the data (``nonzero``, boolean-mask indexing ``x[mask]``, ``masked_select``,
``unique``), an equality answer (``torch.equal``), or a copy to host memory. Each such wait
drains the GPU's queue: a training step with many of them runs at the speed of the host.

:class:`SyncCounter` is a ``TorchDispatchMode`` that sees every aten operation and counts
those, so a test on the CPU can hold the training step to a sync budget that the GPU then
honours -- the operations are the same on every device, only the waiting differs. A
device->host copy (``_to_copy`` / ``copy_`` into a CPU tensor from a non-CPU one) is only an
aten op where there is a device; on the CPU, ``Tensor.tolist()`` / ``.numpy()`` / ``np.asarray(t)``
(which on a GPU tensor copy it to the host first) are counted instead, at the Python level
(``host_reads=False`` turns that off for code that reads tensors that stay on the host anyway).

    with SyncCounter() as syncs:
        train_one_step()
    assert syncs.total <= 2, syncs.summary()

``syncs.by_op`` counts per aten op; with ``stacks=True`` each count also keeps the Python
frames (file:line) that issued it, so the report says *where* the step waits.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# ops that return a host value or a data-dependent shape: the host must wait for the device
HOST_VALUE_OPS = frozenset(
    {
        "aten::_local_scalar_dense",  # .item(), float(t), int(t), bool(t) all end here
        "aten::item",
        "aten::is_nonzero",
        "aten::equal",
        "aten::nonzero",
        "aten::masked_select",
        "aten::_unique",
        "aten::_unique2",
        "aten::unique_dim",
        "aten::unique_consecutive",
    }
)
COPY_OPS = frozenset({"aten::_to_copy", "aten::copy_"})
HOST_READS = frozenset({"tolist", "numpy", "__array__"})  # Tensor methods reading a CPU tensor's memory
INDEX_OP = "aten::index.Tensor"


def _name(func: Any) -> str:
    """``aten::index.Tensor`` for the index overload, ``aten::nonzero`` for the default one."""
    schema = func._schema
    return f"{schema.name}.{schema.overload_name}" if schema.overload_name else schema.name


def _device_of(value: Any) -> torch.device | None:
    return value.device if isinstance(value, torch.Tensor) else None


def is_sync(func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """The name under which ``func(*args, **kwargs)`` is counted, or None when it needs no host wait."""
    name = _name(func)
    base = func._schema.name
    if base in HOST_VALUE_OPS:
        return base
    if name == INDEX_OP:  # x[mask]: the output size is the mask's number of True values
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
            return "aten::index.Tensor(bool mask)"
        return None
    if base in COPY_OPS:
        if base == "aten::_to_copy":
            src, dst = _device_of(args[0]), kwargs.get("device")
        else:  # copy_(self=destination, src)
            dst, src = _device_of(args[0]), _device_of(args[1] if len(args) > 1 else kwargs.get("src"))
        if src is not None and dst is not None and torch.device(dst).type == "cpu" and src.type not in ("cpu", "meta"):
            return f"{base}(device->host)"
    return None


class _HostReads(TorchFunctionMode):
    """``Tensor.tolist()`` / ``.numpy()`` / ``__array__`` of a CPU tensor: a device->host copy on a GPU."""

    def __init__(self, counter: SyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS and args and isinstance(args[0], torch.Tensor) and args[0].device.type == "cpu":
            self.counter.note(f"Tensor.{name}")
        return func(*args, **(kwargs or {}))


class SyncCounter(TorchDispatchMode):
    """Counts host-synchronising ops run inside its ``with`` block (see the module docstring)."""

    def __init__(self, stacks: bool = False, frames: int = 4, host_reads: bool = True) -> None:
        super().__init__()
        self.by_op: Counter[str] = Counter()
        self.stacks = stacks
        self.frames = frames
        self.where: Counter[tuple[str, str]] = Counter()  # (op, "file:line <- file:line ...") -> count
        self._reads = _HostReads(self) if host_reads else None

    def __enter__(self) -> SyncCounter:
        if self._reads is not None:
            self._reads.__enter__()
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if self._reads is not None:
            self._reads.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = is_sync(func, args, kwargs)
        if name is not None:
            self.note(name)
        return func(*args, **kwargs)

    def note(self, name: str) -> None:
        self.by_op[name] += 1
        if self.stacks:
            self.where[(name, self._caller())] += 1

    def _caller(self) -> str:
        """The innermost frames outside torch: where the user's code asked for the value."""
        frames = [f for f in traceback.extract_stack() if "/torch/" not in f.filename and f.filename != __file__]
        return " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in reversed(frames[-self.frames :]))

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    def reset(self) -> None:
        self.by_op.clear()
        self.where.clear()

    def summary(self) -> str:
        """One line per op (and per call site with ``stacks=True``), most frequent first."""
        if not self.by_op:
            return "no host synchronisations"
        lines = [f"{self.total} host synchronisations:"]
        lines += [f"  {n} x {op}" for op, n in self.by_op.most_common()]
        for (op, where), n in self.where.most_common():
            lines.append(f"    {n} x {op} at {where}")
        return "\n".join(lines)


__all__ = ["HOST_VALUE_OPS", "SyncCounter", "is_sync"]
