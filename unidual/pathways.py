"""The two pathways and the tensor moves between their inputs, written once for every floor.

An image batch is ``(N, 3, H, W)``, a clip batch ``(N, 3, T, H, W)``. The models,
the data transforms, the objectives and the visualiser all need the same three
moves between them; they live here (no unidual imports) so models/ and data/,
which must not know each other, share one definition.

* :func:`image_to_clip` -- an image as a static clip (the paper's "inflated" image);
* :func:`fold_frames` -- every frame of a clip becomes its own image (R2D on clips);
* :func:`select_frame` -- one frame per clip (the frame -> image-pathway auxiliary input).
"""

from __future__ import annotations

import torch
from torch import Tensor

MODALITIES = ("image", "video")  # also the names of the two pathways
AUX_SUFFIX = "_aux"  # head of source k on the *other* pathway: f"{k}{AUX_SUFFIX}"


def other_pathway(pathway: str) -> str:
    """The pathway an auxiliary loss sends an example of ``pathway``'s modality to."""
    check_modality(pathway)
    return "video" if pathway == "image" else "image"


def check_modality(value: object, what: str = "modality") -> str:
    if value not in MODALITIES:
        raise ValueError(f"{what} must be 'image' or 'video', got {value!r}")
    return value


def aux_name(key: str) -> str:
    """Name of the auxiliary head of source ``key`` (the head on the other pathway)."""
    return f"{key}{AUX_SUFFIX}"


def is_aux_name(name: str) -> bool:
    return name.endswith(AUX_SUFFIX)


def image_to_clip(x: Tensor, frames: int, *, copy: bool = False) -> Tensor:
    """``(N, 3, H, W)`` -> ``(N, 3, T, H, W)`` static clips.

    By default an expanded *view* (no memory; enough for a forward pass); ``copy=True``
    materialises it, for data that is stored or modified in place.
    """
    if x.dim() != 4:
        raise ValueError(f"image_to_clip expects (N, C, H, W), got shape {tuple(x.shape)}")
    clip = x.unsqueeze(2).expand(-1, -1, frames, -1, -1)
    return clip.contiguous() if copy else clip


def fold_frames(x: Tensor) -> Tensor:
    """``(N, C, T, H, W)`` -> ``(N·T, C, H, W)``: every frame becomes an independent image.

    A view when the clip is stored frames-last (NTHWC), a copy otherwise; undo with
    ``y.reshape(N, T, ...)``.
    """
    if x.dim() != 5:
        raise ValueError(f"fold_frames expects (N, C, T, H, W), got shape {tuple(x.shape)}")
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def select_frame(x: Tensor, index: str | int = "middle", generator: torch.Generator | None = None) -> Tensor:
    """``(N, 3, T, H, W)`` -> ``(N, 3, H, W)``: the middle frame, a random one per clip, or frame ``index``.

    ``"random"`` draws on the CPU (from ``generator``) so a seeded run picks the same
    frames on every device.
    """
    if x.dim() != 5:
        raise ValueError(f"select_frame expects (N, C, T, H, W), got shape {tuple(x.shape)}")
    n, t = x.shape[0], x.shape[2]
    if index == "middle":
        return x[:, :, t // 2]
    if index == "random":
        picks = torch.randint(0, t, (n,), generator=generator, device="cpu").to(x.device)
        return x[torch.arange(n, device=x.device), :, picks]
    if isinstance(index, int) and not isinstance(index, bool):
        return x[:, :, index]
    raise ValueError(f"frame must be 'middle', 'random' or an int, got {index!r}")
