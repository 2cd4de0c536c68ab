"""Memory of a training step before the run: parameters, gradients, optimizer state, activations, peak.

The step runs for real -- forward, backward, optimizer step, twice -- but on *fake* tensors
(``FakeTensorMode``: shapes, dtypes and strides, storage on the ``meta`` device), so even
R(2+1)D-152 at 8 x 16x224² is traced in seconds without a byte of activation memory. Two
things are counted while it runs:

* **saved activations**: every tensor autograd keeps for backward, seen through
  ``torch.autograd.graph.saved_tensors_hooks``, each storage once, parameters and batch excluded;
* **live bytes**: every storage an op creates is followed with a weak reference until it is
  freed; the largest sum over the second step (when gradients and momentum exist) is the peak.

Mixed precision is traced under the CPU autocast policy (``torch.autocast("cpu")`` applies to
fake CPU tensors; its lower-precision list -- convolutions, matmuls, linear -- is the one that
matters for memory and matches CUDA's). Values are not computed, so where the step asks for one
(``.item()``, a boolean mask) the trace assumes the largest case: every mask all true (routing
``both``), every scalar 0. Not included: the CUDA context (a few hundred MB per process), cuDNN
workspaces and the caching allocator's rounding and fragmentation -- see docs/gpu.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MiB = 2**20


@dataclass
class Footprint:
    """Bytes of one training step on one device (one process)."""

    params: int
    grads: int
    optimizer: int  # optimizer state (SGD: the momentum buffers)
    activations: int  # saved for backward at the end of the forward
    inputs: int  # the batch itself
    peak: int  # the most bytes live at once during a steady-state step, everything included
    start: int  # bytes live when that step began (parameters, buffers, optimizer state, batch)
    setup: dict[str, Any] = field(default_factory=dict)  # what was traced (model, batch, amp)

    @property
    def step_peak(self) -> int:
        """What a step adds at its peak to what lives between steps: activations, gradients, temporaries."""
        return self.peak - self.start

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "step_peak": self.step_peak}


# --------------------------------------------------------------------------- tracing
def _storage_key(t: Tensor) -> tuple[int, StorageWeakRef, int]:
    s = t.untyped_storage()
    return s._cdata, StorageWeakRef(s), s.nbytes()


def _tensors(value: Any) -> Iterable[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


class _Tracer(TorchDispatchMode):
    """Follows live storages (peak bytes) and answers data-dependent ops with their largest case.

    ``bound`` is the live total without the frees since the last check; checking every storage
    after every op is what costs, so storages are only checked when that bound passes the peak
    (the true total is never above the bound, so a peak cannot be missed).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.bound = 0
        self.peak = 0

    def track(self, value: Any) -> None:
        """Follow the storages of ``value`` (tensors made before the trace: params, batch)."""
        for t in _tensors(value):
            key, ref, nbytes = _storage_key(t)
            if key not in self.live:
                self.live[key] = (ref, nbytes)
                self.bound += nbytes
        if self.bound > self.peak:
            self.prune()
            self.peak = max(self.peak, self.bound)

    def prune(self) -> None:
        dead = [k for k, (ref, _) in self.live.items() if _expired(ref.cdata)]
        for k in dead:
            self.bound -= self.live.pop(k)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = _largest_case(func, args, kwargs)
        if out is NotImplemented:
            out = func(*args, **kwargs)
        self.prune_reused(out)
        self.track(out)
        return out

    def prune_reused(self, out: Any) -> None:
        """A new storage may sit at the address of a freed one: forget the dead entry first."""
        for t in _tensors(out):
            entry = self.live.get(t.untyped_storage()._cdata)
            if entry is not None and _expired(entry[0].cdata):
                self.bound -= self.live.pop(t.untyped_storage()._cdata)[1]


_expired = torch.UntypedStorage._expired


def _largest_case(func: Any, args: tuple, kwargs: dict) -> Any:
    """Shapes the fake tensors cannot know: masks all true, scalars 0 (True for booleans)."""
    name = func._schema.name
    if name == "aten::_local_scalar_dense":
        dtype = args[0].dtype
        return True if dtype == torch.bool else (0.0 if dtype.is_floating_point else 0)
    if name == "aten::nonzero":
        x = args[0]
        return torch.empty((x.numel(), x.dim()), dtype=torch.long, device=x.device)
    if name == "aten::index" and any(isinstance(i, Tensor) and i.dtype == torch.bool for i in args[1]):
        x, indices = args[0], list(args[1])
        i = next(k for k, v in enumerate(indices) if isinstance(v, Tensor) and v.dtype == torch.bool)
        mask = indices[i]
        shape = (*x.shape[:i], mask.numel(), *x.shape[i + mask.dim() :])
        return x.new_empty(shape)
    if name in ("aten::index_put", "aten::index_put_", "aten::_index_put_impl_") and any(
        isinstance(i, Tensor) and i.dtype == torch.bool for i in args[1]
    ):
        return args[0] if name != "aten::index_put" else args[0].clone()
    return NotImplemented


@dataclass
class StepParts:
    """What :func:`trace_step` builds inside the fake mode (so nothing real is allocated)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    batch: Any  # the tensors of one step
    loss: Callable[[], Tensor]  # forward + loss of ``batch`` on ``model``


def trace_step(build: Callable[[], StepParts], amp: str = "off", steps: int = 2) -> Footprint:
    """The :class:`Footprint` of ``steps`` training steps of what ``build`` returns, traced on fake tensors."""
    dtype = AMP_DTYPES.get(amp)
    with FakeTensorMode(allow_non_fake_inputs=True):
        parts = build()
        params = [p for p in parts.model.parameters()]
        kept = {_storage_key(t)[0] for t in [*params, *_tensors(parts.batch)]}  # counted on their own lines
        input_bytes = sum(t.untyped_storage().nbytes() for t in _tensors(parts.batch))
        tracer = _Tracer()
        saved: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            key, _, nbytes = _storage_key(t)
            if key not in kept:
                saved[key] = nbytes
            return t

        activations = start = 0
        with tracer:
            tracer.track(list(parts.model.parameters()) + list(parts.model.buffers()))
            tracer.track(parts.batch)
            for _ in range(steps):
                parts.optimizer.zero_grad(set_to_none=True)  # the peak of the last step is the largest:
                saved.clear()  # the first has no optimizer state yet
                tracer.prune()
                start = tracer.bound
                autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else nullcontext()
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
                    loss = parts.loss()
                activations = sum(saved.values())
                loss.backward()
                del loss
                parts.optimizer.step()
        grads = sum(p.grad.untyped_storage().nbytes() for p in params if p.grad is not None)
        state = parts.optimizer.state
        optimizer = sum(t.untyped_storage().nbytes() for p in params for t in _tensors(dict(state.get(p, {}))))
        param_bytes = sum(p.untyped_storage().nbytes() for p in params)
    return Footprint(
        params=param_bytes,
        grads=grads,
        optimizer=optimizer,
        activations=activations,
        inputs=input_bytes,
        peak=tracer.peak,
        start=start,
    )


# --------------------------------------------------------------------------- a training config
DEFAULT_CLASSES = 1000  # a head's size where the config does not list its classes (< 1 % of the memory)


@dataclass
class BatchPlan:
    """One process's micro-batch as the mixing sampler composes it: {source: (examples, input shape)}."""

    shapes: dict[str, tuple[int, ...]]
    classes: dict[str, int]
    assumed_classes: list[str]  # sources whose class count was not in the config

    def describe(self) -> str:
        parts = []
        for key, shape in self.shapes.items():
            what = "images" if len(shape) == 4 else f"clips {shape[2]}x"
            parts.append(f"{key}: {shape[0]} {what}{shape[-2]}x{shape[-1]}" if len(shape) == 5 else
                         f"{key}: {shape[0]} {what} {shape[-2]}x{shape[-1]}")  # fmt: skip
        return ", ".join(parts)


def batch_plan(cfg: Any, classes: dict[str, int] | None = None, size: int | None = None) -> BatchPlan:
    """Examples per source (the sampler's first batch), their input shapes, and each head's classes."""
    from unidual.data.labels import read_class_names
    from unidual.data.mixing import batch_shares

    weights = cfg.data.weights or {k: 1.0 for k in cfg.source_keys}
    counts = batch_shares({k: w for k, w in weights.items() if w > 0}, cfg.optim.batch_size, 1)[0]
    shapes: dict[str, tuple[int, ...]] = {}
    heads: dict[str, int] = {}
    assumed: list[str] = []
    for spec in cfg.sources:
        crop = spec.transform.plan(spec.modality, "train").crop or size
        if crop is None:
            raise ValueError(f"source {spec.key!r} trains on whole frames (no crop): give the frame size (--size)")
        n = counts.get(spec.key, 0)
        if n:
            shapes[spec.key] = (n, 3, crop, crop) if spec.modality == "image" else (n, 3, spec.clip.frames, crop, crop)
        if classes and spec.key in classes:
            heads[spec.key] = classes[spec.key]
        elif spec.classes is not None:
            heads[spec.key] = len(read_class_names(spec.classes))
        else:
            heads[spec.key] = DEFAULT_CLASSES
            assumed.append(spec.key)
    return BatchPlan(shapes, heads, assumed)


def step_parts(cfg: Any, plan: BatchPlan, device: torch.device | str = "cpu") -> StepParts:
    """The model, optimizer, batch and loss of one training step of ``cfg`` on ``device``, as the trainer builds them."""
    from unidual.train.build import build_optim, model_for_config
    from unidual.train.objectives import LossModule, Objective

    model = model_for_config(cfg, plan.classes)
    if torch.device(device).type != "cpu":  # (a fake model cannot be "moved" to where it already is)
        model = model.to(device)
    module = LossModule(model, Objective.from_config(cfg)).train()
    optimizer = build_optim(cfg, model, 1, cfg.optim.batch_size).optimizer
    sub = {
        k: {"input": torch.randn(shape, device=device), "label": torch.zeros(shape[0], dtype=torch.long, device=device)}
        for k, shape in plan.shapes.items()
    }
    generator = torch.Generator().manual_seed(0)
    return StepParts(model, optimizer, sub, lambda: module(sub, generator)[0])


def estimate_config(cfg: Any, plan: BatchPlan | None = None) -> Footprint:
    """The per-process :class:`Footprint` of a training config (its model, batch, amp, optimizer)."""
    plan = plan or batch_plan(cfg)
    # the layout changes strides, not bytes; a fixed one keeps any per-machine measurement out of the trace
    fixed = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, channels_last=False))
    fp = trace_step(lambda: step_parts(fixed, plan), cfg.run.amp)
    fp.setup = {
        "model": cfg.model.name,
        "depth": cfg.model.depth,
        "width": cfg.model.width,
        "batch": plan.describe(),
        "batch_size": cfg.optim.batch_size,
        "amp": cfg.run.amp,
        "assumed_classes": {k: DEFAULT_CLASSES for k in plan.assumed_classes},
    }
    return fp


def human(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / MiB:.0f} MiB"


def format_footprint(fp: Footprint, title: str = "") -> str:
    """The lines ``unidual info CONFIG --memory`` prints."""
    s = fp.setup
    lines = [title] if title else []
    if s:
        lines.append(
            f"{s['model']} depth {s['depth']} width {s['width']:g}; {s['batch_size']} examples per process "
            f"({s['batch']}); run.amp={s['amp']}"
        )
    rows = [
        ("parameters", fp.params, ""),
        ("gradients", fp.grads, ""),
        ("optimizer state", fp.optimizer, "momentum buffers"),
        ("saved activations", fp.activations, "kept for backward at the end of the forward"),
        ("input batch", fp.inputs, ""),
        ("peak of a step", fp.peak, "the most live at once: all of the above at their worst moment"),
    ]
    lines.append("memory per process (GPU), estimated on fake tensors:")
    lines += [f"  {name:<18} {human(n):>10}  {note}".rstrip() for name, n, note in rows]
    lines.append(
        f"  not included: the CUDA context (a few hundred MiB), cuDNN workspaces, allocator fragmentation; "
        f"with several processes the gradients live in DDP's buckets the whole run: up to +{human(fp.grads)} at the peak"
    )
    if s.get("assumed_classes"):
        lines.append(
            f"  classes assumed {DEFAULT_CLASSES} for {sorted(s['assumed_classes'])} (not listed in the config)"
        )
    return "\n".join(lines)
