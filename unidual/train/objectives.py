"""Training losses: which pathway each example runs on, which head scores it, how terms are weighted.

Every example of source ``k`` (modality ``m``) runs on the pathway of its modality
and is scored by head ``k`` with cross-entropy (the *task* loss). UniDual-Aux adds
the *auxiliary* losses of the paper (section 2.2, Fig. 1d):

* images inflated to static clips -> video pathway -> head ``{k}_aux``;
* one frame of each clip -> image pathway -> head ``{k}_aux``.

Routing: ``"both"`` sends every example through both pathways (task + aux loss);
``"random"`` sends each example to exactly one of them, the other pathway with
probability ``p``. Inputs headed for the same pathway are concatenated into one
forward pass (images inflated to the clips' length), so BatchNorm sees the mixed
batch as in the paper's mixed mini-batches, and a step costs one forward per pathway.

Each auxiliary term has its own weight: ``w_aux · w_inflated`` for images inflated into the
video pathway, ``w_aux · w_frame`` for frames sent through the image pathway. A source's
``loss_weight`` multiplies every term its examples contribute (task and auxiliary), independently
of how often the source is sampled.

Targets (the recipe, docs/training.md "Recipe"): a source's part of the batch may carry soft
targets ``"target"`` ``(N, C)`` (mixup / cutmix, :mod:`unidual.data.mixup`); every term that
sees those examples -- the inflated-image term, a clip's frame term -- uses the same rows.
``label_smoothing`` applies to every cross-entropy term (torch's ``label_smoothing``, which on
soft targets equals timm's ``mixup_target`` smoothing). Accuracy statistics count the argmax
of the soft target as the label.

Shared heads (``heads={source: other source}``): the source's examples train the other
source's head -- on whatever pathway they run (an image on the image pathway feeds a head that
lives on the video pathway), task and auxiliary term alike.

Normalisation (``normalize``): ``"examples"`` (default) divides the weighted sum of every
cross-entropy by N, the examples in the batch -- with routing ``both`` an example of
UniDual-Aux then contributes two terms where a baseline's contributes one, so its shared
filters take steps about twice as large at the same LR. ``"terms"`` divides by the weighted
number of scored terms instead (Σ w·n over segments), which makes the loss a weighted mean per
scored term and puts every model's gradient on the same scale. Either way, with
equal-proportion sampling the tasks are weighted equally on average, and under DDP the
averaged gradient equals the global-batch one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unidual.models import ImageVideoNet
from unidual.models.table import get_model_def
from unidual.pathways import aux_name, image_to_clip, other_pathway, select_frame

if TYPE_CHECKING:  # an annotation only: importing it loads torch._dynamo
    from unidual.train.compiled import CompiledModel

ROUTINGS = ("both", "random")
NORMALIZE = ("examples", "terms")


@dataclass
class Segment:
    """A slice of a batch on its way to one head."""

    pathway: str
    input: Tensor
    label: Tensor
    head: str
    term: str  # name of the loss term in the stats: the source key, or its auxiliary head's name
    weight: float
    target: Tensor | None = None  # (n, C) soft targets (mixup / cutmix); None: ``label`` is the target
    shared: bool = False  # the head belongs to another source and may live on the other pathway
    classes_of: str = ""  # the source whose classes the labels are in (the head's source under ``head:``)


@dataclass
class LossOutput:
    loss: Tensor  # scalar to backpropagate
    examples: int  # distinct examples in the batch
    loss_sum: dict[str, Tensor] = field(default_factory=dict)  # term -> Σ CE (unweighted), on the device
    count: dict[str, int] = field(default_factory=dict)  # term -> examples scored
    correct: dict[str, Tensor] = field(default_factory=dict)  # term -> top-1 hits, on the device
    part_correct: dict[str, Tensor] = field(default_factory=dict)  # "<part>/<term>" -> hits on that label part


class RoutedModel(Protocol):
    """What the objective asks of the model it trains: an :class:`ImageVideoNet`, or the CompiledModel around one."""

    @property
    def pathways(self) -> tuple[str, ...]: ...

    def head_for(self, key: str, pathway: str) -> str: ...

    def __call__(self, x: Tensor, pathway: str | None = ..., heads: Sequence[str] | None = ...) -> Any: ...


def pathway_for(model: object, modality: str) -> str:
    """The pathway an example of ``modality`` takes: its own if the model has it, else the only one."""
    pathways = tuple(getattr(model, "pathways", ()))
    if modality in pathways:
        return modality
    if not pathways:
        raise ValueError(f"model {type(model).__name__} exposes no pathways")
    return pathways[0]


class Objective:
    """Builds the loss of one mixed batch; ``aux`` adds the auxiliary terms (models with auxiliary heads)."""

    def __init__(
        self,
        modalities: Mapping[str, str],
        *,
        aux: bool = False,
        aux_weight: float = 1.0,
        inflated_weight: float = 1.0,
        frame_weight: float = 1.0,
        normalize: str = "examples",
        routing: str = "both",
        p: float = 0.5,
        frame: str = "random",
        label_smoothing: float = 0.0,
        loss_weights: Mapping[str, float] | None = None,
        heads: Mapping[str, str] | None = None,
        label_parts: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
    ) -> None:
        if normalize not in NORMALIZE:
            raise ValueError(f"loss normalisation must be one of {NORMALIZE}, got {normalize!r}")
        if routing not in ROUTINGS:
            raise ValueError(f"aux routing must be one of {ROUTINGS}, got {routing!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"aux routing probability p must be in [0, 1], got {p}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")
        self.modalities = dict(modalities)
        unknown = (set(loss_weights or {}) | set(heads or {}) | set((heads or {}).values())) - set(self.modalities)
        if unknown:
            raise ValueError(f"loss weights / heads name unknown sources {sorted(unknown)} ({sorted(self.modalities)})")
        if any(w < 0 for w in (loss_weights or {}).values()):
            raise ValueError(f"loss weights must be >= 0, got {dict(loss_weights or {})}")
        self.label_smoothing = float(label_smoothing)
        self.loss_weights = {k: float((loss_weights or {}).get(k, 1.0)) for k in self.modalities}
        self.heads = {k: v for k, v in (heads or {}).items() if v != k}  # source -> the source whose head it trains
        self.aux = aux and aux_weight > 0
        self.aux_weight = float(aux_weight)
        # weight of the auxiliary term of a source, by the source's modality
        self.term_weight = {
            "image": self.aux_weight * float(inflated_weight),
            "video": self.aux_weight * float(frame_weight),
        }
        self.normalize = normalize
        self.routing = routing
        self.p = float(p)
        self.frame = frame
        # source -> part -> each class's part index (run.label_parts), copied to the device once
        self.label_parts = {
            k: {p: torch.tensor(v) for p, v in parts.items()} for k, parts in (label_parts or {}).items()
        }

    @classmethod
    def from_config(cls, cfg: Any, label_parts: Mapping[str, Mapping[str, Sequence[int]]] | None = None) -> Objective:
        aux = get_model_def(cfg.model.name).aux_heads
        a = cfg.aux
        return cls(
            cfg.modalities,
            aux=aux,
            aux_weight=a.weight,
            inflated_weight=a.inflated_weight,
            frame_weight=a.frame_weight,
            normalize=a.normalize,
            routing=a.routing,
            p=a.p,
            frame=a.frame,
            label_smoothing=cfg.optim.label_smoothing,
            loss_weights={s.key: s.loss_weight for s in cfg.sources},
            heads={s.key: s.head for s in cfg.sources if s.head},
            label_parts=label_parts,
        )

    # -- planning --------------------------------------------------------
    def segments(
        self, model: RoutedModel, sub: Mapping[str, Mapping[str, Tensor]], generator: torch.Generator | None = None
    ) -> list[Segment]:
        """Where every example of the batch goes (task and auxiliary segments)."""
        out: list[Segment] = []
        for key, part in sub.items():
            if key not in self.modalities:
                raise KeyError(f"batch has source {key!r} the objective does not know ({sorted(self.modalities)})")
            x, y, target = part["input"], part["label"], part.get("target")
            if len(y) == 0:
                continue
            if target is not None:
                y = target.argmax(1)  # accuracy statistics: the dominant class of the mixed target
            modality = self.modalities[key]
            own = pathway_for(model, modality)
            scale = self.loss_weights[key]
            if not self.aux:
                out.append(self._segment(model, key, own, x, y, target, key, scale))
                continue
            aux_pathway = other_pathway(modality)
            # "both": every example in both terms, no selection; "random": rows drawn on the CPU, so
            # selecting them needs no device round trip (a boolean mask on the device would)
            task_rows: Tensor | None = None
            aux_rows: Tensor | None = None
            if self.routing == "random":
                to_aux = (torch.rand(len(y), generator=generator) < self.p).tolist()  # host values, no device op
                task_rows = torch.tensor([i for i, a in enumerate(to_aux) if not a], dtype=torch.long)
                aux_rows = torch.tensor([i for i, a in enumerate(to_aux) if a], dtype=torch.long)
            if task_rows is None or len(task_rows):
                xt, yt, tt = _take(x, task_rows), _take(y, task_rows), _take_target(target, task_rows)
                out.append(self._segment(model, key, own, xt, yt, tt, key, scale))
            weight = self.term_weight[modality] * scale
            if (aux_rows is None or len(aux_rows)) and weight > 0:  # a zero-weight term costs no forward
                xa, ya, ta = _take(x, aux_rows), _take(y, aux_rows), _take_target(target, aux_rows)
                if modality == "video":
                    xa = select_frame(xa, self.frame, generator)  # image pathway sees single frames
                # images stay 4D: they are inflated below (or by the model) on the video pathway
                out.append(self._segment(model, key, aux_pathway, xa, ya, ta, aux_name(key), weight))
        return out

    def _segment(
        self,
        model: RoutedModel,
        key: str,
        pathway: str,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        term: str,
        weight: float,
    ) -> Segment:
        """Source ``key``'s examples on ``pathway``: its own head there, or the shared head it trains."""
        shared = self.heads.get(key)
        head = model.head_for(key, pathway) if shared is None else shared
        return Segment(pathway, x, y, head, term, weight, target, shared is not None, shared or key)

    # -- loss ------------------------------------------------------------
    def __call__(
        self, model: RoutedModel, sub: Mapping[str, Mapping[str, Tensor]], generator: torch.Generator | None = None
    ) -> LossOutput:
        examples = sum(len(part["label"]) for part in sub.values())
        if examples == 0:
            raise ValueError("empty batch: every example was skipped")
        segments = self.segments(model, sub, generator)
        total: Tensor | None = None
        scored = 0.0  # Σ weight · examples over the segments: the "terms" normaliser
        stats = LossOutput(loss=torch.zeros(()), examples=examples)
        for group in group_segments(segments):
            x = torch.cat([s.input for s in group])
            if any(s.shared for s in group):  # a shared head may live on the other pathway: name the heads
                out = model(x, pathway=group[0].pathway, heads=sorted({s.head for s in group}))
            else:
                out = model(x, pathway=group[0].pathway)
            start = 0
            for s in group:
                n = len(s.label)
                logits = out[s.head][start : start + n].float()
                start += n
                ce = self.cross_entropy(logits, s)
                term = ce * s.weight
                total = term if total is None else total + term
                scored += s.weight * n
                # statistics stay on the device (read when a record is written, unidual/train/meters.py)
                stats.loss_sum[s.term] = _plus(stats.loss_sum.get(s.term), ce.detach())
                stats.count[s.term] = stats.count.get(s.term, 0) + n
                predicted = logits.detach().argmax(1)
                stats.correct[s.term] = _plus(stats.correct.get(s.term), (predicted == s.label).sum())
                for part, index in self._parts(s.classes_of, logits.device).items():
                    hits = (index[predicted] == index[s.label]).sum()
                    stats.part_correct[f"{part}/{s.term}"] = _plus(stats.part_correct.get(f"{part}/{s.term}"), hits)
        assert total is not None
        stats.loss = total / (scored if self.normalize == "terms" and scored > 0 else examples)
        return stats

    def _parts(self, source: str, device: torch.device) -> dict[str, Tensor]:
        parts = self.label_parts.get(source, {})
        if any(t.device != device for t in parts.values()):
            parts = self.label_parts[source] = {p: t.to(device) for p, t in parts.items()}
        return parts

    def cross_entropy(self, logits: Tensor, s: Segment) -> Tensor:
        """Summed CE of one segment: hard labels or soft targets, label-smoothed if asked."""
        target = s.label if s.target is None else s.target.to(logits.dtype)
        return F.cross_entropy(logits, target, reduction="sum", label_smoothing=self.label_smoothing)


class LossModule(nn.Module):
    """``model`` + objective behind one ``forward``, so DDP sees exactly one forward per step.

    Returns ``(loss, stats)``; the per-term sums in ``stats`` are device tensors (reading them is a
    host sync, left to the metrics log), the counts plain numbers.
    """

    def __init__(self, model: ImageVideoNet, objective: Objective) -> None:
        super().__init__()
        self.model: ImageVideoNet | CompiledModel = model  # build_model may put the CompiledModel around it here
        self.objective = objective

    def forward(
        self, sub: Mapping[str, Mapping[str, Tensor]], generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Any]]:
        out = self.objective(self.model, sub, generator)
        stats = {"examples": out.examples, "loss_sum": out.loss_sum, "count": out.count, "correct": out.correct}
        if out.part_correct:
            stats["part_correct"] = out.part_correct
        return out.loss, stats


def group_segments(segments: list[Segment]) -> list[list[Segment]]:
    """Segments that can share one forward pass: same pathway, same input shape after inflation.

    On the video pathway, images are inflated to the length of the clips they join
    (to the model's own ``frames`` when there are no clips, by the model itself).
    """
    by_pathway: dict[str, list[Segment]] = {}
    for s in segments:
        by_pathway.setdefault(s.pathway, []).append(s)
    groups: list[list[Segment]] = []
    for pathway, segs in by_pathway.items():
        clip_len = next((s.input.shape[2] for s in segs if s.input.dim() == 5), None)
        if pathway == "video" and clip_len is not None:
            segs = [_inflated(s, clip_len) if s.input.dim() == 4 else s for s in segs]
        by_shape: dict[tuple[int, ...], list[Segment]] = {}
        for s in segs:
            by_shape.setdefault(tuple(s.input.shape[1:]), []).append(s)
        groups.extend(by_shape.values())
    return groups


def _inflated(s: Segment, frames: int) -> Segment:
    return dataclasses.replace(s, input=image_to_clip(s.input, frames))


def _plus(total: Tensor | None, value: Tensor) -> Tensor:
    """Accumulate a device statistic in float64 (as the Python floats it replaced: same logged values)."""
    return value.double() if total is None else total + value.double()


def _take(t: Tensor, rows: Tensor | None) -> Tensor:
    """Rows ``rows`` (CPU indices) of ``t``; all of it when ``rows`` is None."""
    return t if rows is None else t.index_select(0, rows.to(t.device))


def _take_target(target: Tensor | None, rows: Tensor | None) -> Tensor | None:
    return None if target is None else _take(target, rows)
