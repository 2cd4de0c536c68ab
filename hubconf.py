"""torch.hub entry points: ``torch.hub.load("<owner>/unidual", "unidual_aux", heads=..., modalities=...)``.

One entry per model of the paper's Table 1 (``unidual models``), each taking the arguments of
:func:`unidual.create_model` -- ``weights=`` included: a name of ``unidual weights``, a URL with a
known hash, or a ``.pth`` file of torchvision-layout R(2+1)D weights (fetched into
``$UNIDUAL_CACHE`` and hash-checked; nothing is downloaded without it)::

    torch.hub.load(repo, "r2plus1d", weights="r2plus1d_18_kinetics400")        # Kinetics classifier kept
    torch.hub.load(repo, "unidual_aux", weights="r2plus1d_34_8_kinetics",
                   heads={"cifar": 10, "ucf": 101}, modalities={"cifar": "image", "ucf": "video"})
"""

from __future__ import annotations

import inspect as _inspect
from typing import TYPE_CHECKING

from unidual import create_model as _create_model
from unidual import list_models as _list_models
from unidual.models.registry import describe as _describe

if TYPE_CHECKING:  # torch.hub lists every public callable here as an entry point: nothing else may be one
    from collections.abc import Callable
    from typing import Any

dependencies = ["torch", "numpy", "tqdm"]  # what importing unidual.models needs (torch.hub checks these)


def _entry(name: str) -> Callable[..., Any]:
    def entry(**kwargs: Any) -> Any:
        return _create_model(name, **kwargs)

    signature = _inspect.signature(_create_model)
    entry.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"{_describe(name)}.\n\nArguments as unidual.create_model (without the name):\n{_create_model.__doc__}"
    )
    return entry


for _name in _list_models():
    globals()[_name] = _entry(_name)
