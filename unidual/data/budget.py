"""The decode budget: how many pixels any path that opens media may allocate.

A file's header says how large its frames are before a single pixel is decoded, and a
few hundred bytes can declare a 16000x16000 canvas (a GIF's logical screen, a PNG's
IHDR) or a 8192x8192 H.264 stream. Every reader in :mod:`unidual.data.decode` (so
training, ``eval``, ``predict``, ``visualize``, ``data check``, ``data prepare`` and
anything built on ``file_views`` / ``read_clip`` / ``load_image``, such as features and
serve) applies one budget:

- ``max_declared_pixels``: a declared frame or canvas larger than this is refused with
  one line naming the file and its declared size, before decoding (the decoder alone
  would allocate that canvas several times over);
- ``max_frame_pixels``: a decoded frame larger than this is converted to RGB at a
  reduced size (aspect kept) straight from the decoder's output, never at full size;
  JPEGs are decoded at a reduced scale, other images box-reduced before mode conversion;
- ``max_read_pixels``: the frames one read returns together (a test video's clips) are
  reduced alike so that their sum stays under this.

Code that serves untrusted uploads can tighten it for a block::

    with decode_budget_limited(max_declared_pixels=4096 * 4096):
        views = file_views(path, "video", spec)

The budget is process-wide (a module setting, not per thread): DataLoader workers started
with ``spawn``/``forkserver`` see the defaults below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

from unidual.data.errors import DataError

BUDGET_NOTE = "(the decode budget, unidual.data.budget)"


class DeclaredSizeError(DataError):
    """A file's header declares frames larger than the decode budget allows."""


@dataclass(frozen=True)
class DecodeBudget:
    """Pixel limits every media reader applies (see the module doc)."""

    max_declared_pixels: int = 8192 * 8192  # 67 Mpx: 8K (7680x4320, 8192x4320) and 8192x8192 pass
    max_frame_pixels: int = 2048 * 2048  # 4.2 Mpx: 1080p and 1440p frames are kept as they are
    max_read_pixels: int = 1 << 29  # 537 Mpx: 160 frames of 1080p pass; about 1.6 GB of RGB

    def __post_init__(self) -> None:
        for name in ("max_declared_pixels", "max_frame_pixels", "max_read_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"DecodeBudget.{name} must be >= 1")

    def check_declared(self, label: object, width: int, height: int, limit: int | None = None) -> None:
        """Refuse a file whose header declares more pixels per frame than ``max_declared_pixels``
        (or ``limit``, when lower): one line naming the file and the declared size."""
        limit = self.max_declared_pixels if limit is None else min(limit, self.max_declared_pixels)
        if width * height > limit:
            raise DeclaredSizeError(
                f"{label}: declared size {width}x{height} = {width * height} pixels is above the limit of "
                f"{limit} {BUDGET_NOTE}"
            )

    def frame_size(self, width: int, height: int, count: int = 1) -> tuple[int, int] | None:
        """(w, h) to convert ``count`` frames of ``width x height`` to, or None to keep the size.

        Scaled alike so that each frame is within ``max_frame_pixels`` and all ``count``
        within ``max_read_pixels``; sides stay >= 1 and the aspect ratio is kept.
        """
        pixels = width * height
        if pixels <= 0:
            return None
        allowed = min(self.max_frame_pixels, self.max_read_pixels // max(count, 1))
        if pixels <= allowed:
            return None
        scale = math.sqrt(max(allowed, 1) / pixels)
        return max(1, int(width * scale)), max(1, int(height * scale))


_budget = DecodeBudget()


def decode_budget() -> DecodeBudget:
    """The budget in force."""
    return _budget


def set_decode_budget(budget: DecodeBudget) -> DecodeBudget:
    """Put ``budget`` in force for this process; returns the previous one."""
    global _budget
    previous, _budget = _budget, budget
    return previous


@contextlib.contextmanager
def decode_budget_limited(**limits: int) -> Iterator[DecodeBudget]:
    """The budget with some limits changed, for the ``with`` block (e.g. a server's uploads)."""
    previous = set_decode_budget(dataclasses.replace(_budget, **limits))
    try:
        yield _budget
    finally:
        set_decode_budget(previous)
