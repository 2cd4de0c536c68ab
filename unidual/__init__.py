"""UniDual: one network for still images and video clips.

Shared 2D spatial convolutions, dual point-wise convolutions (t×1×1 for clips,
1×1 for images), trained jointly on mixed image and video datasets.
"""

from __future__ import annotations

__version__ = "0.1.0"


def create_model(name: str, **kwargs):
    """Build a registered model; see :func:`unidual.models.create_model`."""
    from unidual.models import create_model as _create

    return _create(name, **kwargs)


def list_models() -> list[str]:
    from unidual.models import list_models as _list

    return _list()
