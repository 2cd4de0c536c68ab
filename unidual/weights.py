"""Published R(2+1)D weights by name, downloaded once into a cache and checked against their hash.

``unidual weights`` lists :data:`WEIGHTS`; ``unidual convert NAME|URL|PATH`` and
``unidual.create_model(..., weights=NAME)`` read a file through :func:`fetch_weights`:

* a NAME of the registry downloads its URL into ``$UNIDUAL_CACHE/weights/`` (default
  ``~/.cache/unidual/weights/``) with torch.hub's downloader, which writes a temporary
  ``*.partial`` file and renames it only once the whole file arrived and its SHA-256 matched --
  so an interrupted or corrupted download never takes the final name;
* a URL is downloaded the same way, checked against ``--sha256`` or the hash prefix torch.hub
  file names carry (``name-<hex>.pth``); a URL with neither is refused, since a file whose hash
  nobody knows could be a truncated one;
* a PATH is used in place (checked when a hash is known).

A file already in the cache is hashed again on every use; one that fails is removed and fetched
anew. Nothing is downloaded except by these two commands (tests use ``file://`` URLs).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch.hub

# torchvision's video normalisation, which ig65m-pytorch uses too (pixels in [0, 1], RGB)
_KINETICS_NORM = "mean (0.43216, 0.394666, 0.37645), std (0.22803, 0.22145, 0.216989)"
_IG65M = "https://github.com/moabitcoin/ig65m-pytorch/releases/download/v1.0.0/"
_IG65M_LICENCE = (
    "converted from facebookresearch/VMZ's Caffe2 models by moabitcoin/ig65m-pytorch (code MIT); "
    "IG-65M is an internal Instagram data set: check VMZ's terms before redistributing"
)
_IG65M_PREP = f"RGB in [0, 1], shorter side resized to 128, centre crop 112, {_KINETICS_NORM}"
HEX_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[^.]+$")  # torch.hub's name-<sha256 prefix>.ext


class WeightsError(ValueError):
    """A weights file cannot be had or fails its hash; the message names the file and what to do."""


def name_hash(filename: str) -> str | None:
    """The SHA-256 prefix a torch.hub-style file name carries (``r2plus1d_18-91a641e6.pth``)."""
    m = HEX_PREFIX.search(filename)
    return m.group(1) if m else None


@dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint: where it is, what it is, how its inputs must be prepared."""

    name: str
    url: str
    architecture: str
    trained_on: str
    classes: int
    head: str  # head / source key of its classifier once converted
    frames: int  # frames per clip it was trained / evaluated with
    size: int  # input height = width
    preprocessing: str
    licence: str
    sha256: str | None = None  # full digest; when None the file name's prefix is checked

    @property
    def filename(self) -> str:
        return Path(unquote(urlparse(self.url).path)).name

    @property
    def hash(self) -> str:
        """What a download must match: the full digest, else the prefix in the file name."""
        found = self.sha256 or name_hash(self.filename)
        if not found:
            raise ValueError(f"weights {self.name!r}: neither sha256 nor a hash prefix in {self.filename!r}")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "filename": self.filename, "hash": self.hash}


WEIGHTS: dict[str, PublishedWeights] = {}


def register_weights(entry: PublishedWeights, *, replace: bool = False) -> PublishedWeights:
    """Add an entry (a private mirror, a test's ``file://`` copy); ``replace=True`` redefines one."""
    if entry.name in WEIGHTS and not replace:
        raise ValueError(f"weights {entry.name!r} are already registered")
    entry.hash  # noqa: B018 -- an entry without any hash is refused here, not at download time
    WEIGHTS[entry.name] = entry
    return entry


def list_weights() -> list[str]:
    return list(WEIGHTS)


def get_weights(name: str) -> PublishedWeights:
    if name not in WEIGHTS:
        raise WeightsError(
            f"{name}: no such weights file, URL or known weights name (`unidual weights` lists {', '.join(WEIGHTS)})"
        )
    return WEIGHTS[name]


register_weights(
    PublishedWeights(
        "r2plus1d_18_kinetics400",
        "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth",
        architecture="R(2+1)D-18, torchvision layout, BatchNorm eps 1e-5",
        trained_on="Kinetics-400 (torchvision's R2Plus1D_18_Weights.KINETICS400_V1)",
        classes=400,
        head="kinetics",
        frames=16,
        size=112,
        preprocessing=f"RGB in [0, 1], resized to 128×171, centre crop 112, {_KINETICS_NORM}",
        licence="torchvision (BSD-3-Clause code); Kinetics-400 videos are YouTube content under their owners' terms",
    )
)


def _ig65m(frames: int, finetuned: bool, hash_prefix: str, classes: int) -> PublishedWeights:
    """One of the four ig65m-pytorch R(2+1)D-34 files (their names are ig65m-pytorch's hub names)."""
    kind = "kinetics" if finetuned else "ig65m"
    stem = f"clip{frames}_ft_kinetics_from_ig65m" if finetuned else f"clip{frames}_ig65m_from_scratch"
    return PublishedWeights(
        f"r2plus1d_34_{frames}_{kind}",
        f"{_IG65M}r2plus1d_34_{stem}-{hash_prefix}.pth",
        architecture="R(2+1)D-34, Caffe2/VMZ mid-channel layout, BatchNorm eps 1e-3",
        trained_on="IG-65M, then finetuned on Kinetics-400"
        if finetuned
        else f"IG-65M from scratch ({classes} hashtag classes; no label names published)",
        classes=classes,
        head=kind,
        frames=frames,
        size=112,
        preprocessing=_IG65M_PREP,
        licence=_IG65M_LICENCE,
    )


for _entry in (
    _ig65m(8, False, "9bae36ae", 359),
    _ig65m(8, True, "0aa0550b", 400),
    _ig65m(32, False, "449a7af9", 487),
    _ig65m(32, True, "ade133f1", 400),
):
    register_weights(_entry)


def cache_dir() -> Path:
    """``$UNIDUAL_CACHE/weights`` (default ``~/.cache/unidual/weights``)."""
    root = os.environ.get("UNIDUAL_CACHE") or Path.home() / ".cache" / "unidual"
    return Path(root).expanduser() / "weights"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hex(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", value):
        raise WeightsError(f"--sha256 {sha256!r}: expected 8 to 64 hexadecimal digits")
    return value


@dataclass(frozen=True)
class Fetched:
    """A verified local weights file; ``entry`` is set when it came from the registry."""

    path: Path
    sha256: str
    source: str
    entry: PublishedWeights | None = None


def fetch_weights(source: str | os.PathLike, sha256: str | None = None, *, progress: bool | None = None) -> Fetched:
    """NAME | URL | PATH -> a local file whose hash matched (see the module docstring)."""
    expected = _check_hex(sha256)
    text = str(source)
    if Path(text).expanduser().is_file():
        path = Path(text).expanduser()
        entry = next((w for w in WEIGHTS.values() if w.filename == path.name), None)
        want = expected or (entry.hash if entry else name_hash(path.name))
        digest = file_sha256(path)
        if want and not digest.startswith(want):
            raise WeightsError(f"{path}: its sha256 {digest} does not match the expected {want}")
        return Fetched(path, digest, text, entry)
    if "://" in text:
        url, entry = text, next((w for w in WEIGHTS.values() if w.url == text), None)
    else:
        entry = get_weights(text)
        url = entry.url
    name = Path(unquote(urlparse(url).path)).name
    want = expected or (entry.hash if entry else name_hash(name))
    if not want:
        raise WeightsError(
            f"{url}: no hash to check the download against; pass --sha256 HEX (or download it yourself and give its path)"
        )
    dest = cache_dir() / name
    if dest.is_file():
        digest = file_sha256(dest)
        if digest.startswith(want):
            return Fetched(dest, digest, text, entry)
        print(
            f"unidual: cached {dest} fails its hash ({digest[:12]}… ≠ {want[:12]}…): removed, fetching again",
            file=sys.stderr,
        )
        dest.unlink()
    _download(url, dest, want, sys.stderr.isatty() if progress is None else progress)
    return Fetched(dest, file_sha256(dest), text, entry)


def _download(url: str, dest: Path, want: str, progress: bool) -> None:
    """torch.hub's downloader (temp file, hash check, rename); every failure as one WeightsError line."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=want, progress=progress)
    except Exception as exc:  # URLError, HTTPError, IncompleteRead, ConnectionResetError, a full disk ...
        if isinstance(exc, RuntimeError) and "invalid hash value" in str(exc):
            raise WeightsError(f"{url}: refused and removed, the download does not match its hash ({exc})") from None
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(
            f"cannot download {url} ({type(exc).__name__}: {reason}); without network, fetch it by hand "
            f"and put it at {dest} (or pass its path)"
        ) from None
