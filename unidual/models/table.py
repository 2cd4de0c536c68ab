"""The models of the paper's Table 1, one typed entry each: every difference between them is a field.

A model has *model pathways* (where its heads live, what ``forward(x, pathway=...)``
accepts) and a backbone with *backbone pathways* (which point-wise convs exist).
``route`` maps the first onto the second:

=====================  ==================  ======================================
name                   route               what an input goes through
=====================  ==================  ======================================
r2d                    image -> image      images 2D; clips frame by frame, mean over time
r2plus1d               video -> video      clips 3D; images inflated to static clips
r2d_multitask          video -> image      clips frame by frame + mean; images inflated first
r2plus1d_multitask     video -> video      as r2plus1d, one head per task
r2d_lstm_multitask     video -> image      frame features -> LSTM(512) -> heads; images inflated
unidual(_aux)          image -> image,     images on the 1×1 pathway, clips on the t×1×1 pathway
                       video -> video
=====================  ==================  ======================================

``create_model``, the trainer, the objectives, the study and ``unidual models`` read
these fields; nothing outside this file compares model names. Adding a model is one
:func:`register_model` call (docs/models.md has a worked example). How a model may be trained
(which regimes) is the regime table's to say (``unidual.train.regimes``): models know nothing
of training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from unidual.pathways import MODALITIES

Convert = Literal["deflate", "inflate"]


@dataclass(frozen=True)
class ModelDef:
    """What one model is; :func:`unidual.models.create_model` builds it from these fields."""

    name: str
    description: str  # one line, shown by `unidual models`
    backbone_pathways: tuple[str, ...]  # point-wise convs in every (2+1)D conv: ("video",), ("image",) or both
    route: Mapping[str, str]  # model pathway -> backbone pathway that computes it
    temporal: Literal["mean", "lstm"] = "mean"  # frame features -> clip features, when clips run frame by frame
    aux_heads: bool = False  # every head also on the other pathway ("{key}_aux"); deploy() drops them
    needs_modalities: tuple[str, ...] = ()  # modalities its sources must cover together (UniDual: both)
    # how weights pretrained on the other kind of backbone become this one's (the finetuned rows):
    # "deflate" sums t×1×1 filters into 1×1 ones, "inflate" spreads 1×1 filters over t taps
    pretrained_convert: Convert | None = None
    options: Mapping[str, object] = field(default_factory=dict)  # model-specific create_model options + defaults

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"model name must be letters, digits and '_', got {self.name!r}")
        for p in (*self.backbone_pathways, *self.route, *self.route.values(), *self.needs_modalities):
            if p not in MODALITIES:
                raise ValueError(f"{self.name}: pathway must be one of {MODALITIES}, got {p!r}")
        if not self.route or set(self.route.values()) - set(self.backbone_pathways):
            raise ValueError(f"{self.name}: route {dict(self.route)} must map onto {self.backbone_pathways}")
        if self.aux_heads and len(self.route) < 2:
            raise ValueError(f"{self.name}: auxiliary heads need a model with both pathways")
        object.__setattr__(self, "route", dict(self.route))
        object.__setattr__(self, "options", dict(self.options))

    def __deepcopy__(self, memo: dict) -> ModelDef:
        return self  # a definition is shared by every model built from it (models are deep-copied)

    @property
    def pathways(self) -> tuple[str, ...]:
        """The model pathways, in the order (image, video)."""
        return tuple(p for p in MODALITIES if p in self.route)

    @property
    def heads_by_modality(self) -> bool:
        """True when heads sit on their source's modality's pathway (so ``modalities`` is required)."""
        return len(self.route) > 1


_MODELS: dict[str, ModelDef] = {}


def register_model(definition: ModelDef, *, replace: bool = False) -> ModelDef:
    """Add a model to the registry (``replace=True`` to redefine one, e.g. in a test)."""
    if definition.name in _MODELS and not replace:
        raise ValueError(f"model {definition.name!r} is already registered")
    _MODELS[definition.name] = definition
    return definition


def unregister_model(name: str) -> None:
    _MODELS.pop(name, None)


def get_model_def(name: str) -> ModelDef:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(_MODELS)}")
    return _MODELS[name]


def model_names() -> list[str]:
    return list(_MODELS)


# -- the paper's Table 1 -------------------------------------------------------------------------
_BOTH = {"image": "image", "video": "video"}
register_model(
    ModelDef(
        "r2d",
        "R2D: 2D ResNet (t=1); clips frame by frame, mean over time",
        backbone_pathways=("image",),
        route={"image": "image"},
        pretrained_convert="deflate",
    )
)
register_model(
    ModelDef(
        "r2plus1d",
        "R(2+1)D; images inflated to static clips",
        backbone_pathways=("video",),
        route={"video": "video"},
        pretrained_convert="inflate",
    )
)
register_model(
    ModelDef(
        "r2d_multitask",
        "R2D on frames + temporal mean, one head per task",
        backbone_pathways=("image",),
        route={"video": "image"},
        pretrained_convert="deflate",
    )
)
register_model(
    ModelDef(
        "r2plus1d_multitask",
        "R(2+1)D, one head per task",
        backbone_pathways=("video",),
        route={"video": "video"},
        pretrained_convert="inflate",
    )
)
register_model(
    ModelDef(
        "r2d_lstm_multitask",
        "R2D on frames + 512-unit LSTM, one head per task",
        backbone_pathways=("image",),
        route={"video": "image"},
        temporal="lstm",
        pretrained_convert="deflate",
        options={"lstm_hidden": 512},
    )
)
register_model(
    ModelDef(
        "unidual",
        "UniDual: shared spatial convs, dual point-wise convs, heads on their modality's pathway",
        backbone_pathways=("video", "image"),
        route=_BOTH,
        needs_modalities=("image", "video"),
        pretrained_convert="deflate",
    )
)
register_model(
    ModelDef(
        "unidual_aux",
        "UniDual + auxiliary heads (each task also on the other pathway); deploy() drops them",
        backbone_pathways=("video", "image"),
        route=_BOTH,
        aux_heads=True,
        needs_modalities=("image", "video"),
        pretrained_convert="deflate",
        options={"deployed": False},
    )
)
