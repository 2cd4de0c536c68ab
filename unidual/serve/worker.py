"""The child process that decodes and predicts uploads, cut off when it overruns its time.

Decoding goes through ``predict``'s functions (and so through the data package's decode limits),
the feature maps through ``visualize``'s. Running them in a child process (``spawn``: the parent
never forks a process holding torch's thread pools) is what bounds a request's time for real: a
file that takes longer than ``timeout`` has its child killed and a fresh one started, and a
decoder that crashes takes only the child with it.
"""

from __future__ import annotations

import base64
import multiprocessing as mp
import tempfile
import threading
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

from unidual.checkpoint import load_model
from unidual.evaluate.predict import MAX_SIDE, predict_files
from unidual.evaluate.visualize import centre_clip, dual_activations, plot_figure

_STATE: dict[str, Any] = {}  # the child's model and payload


class WorkerTimeout(RuntimeError):
    """The file took longer than the limit; its work was stopped."""


class WorkerBusy(RuntimeError):
    """Another file is still being worked on."""


def _load(checkpoint: str, max_side: int) -> None:
    model, payload = load_model(checkpoint, deploy=True)
    _STATE.update(model=model, payload=payload, max_side=max_side)


def _ready() -> bool:
    return "model" in _STATE


def _feature_maps(path: str) -> str:
    """The Figure-2 style PNG of the last block, as a base64 string."""
    model, payload = _STATE["model"], _STATE["payload"]
    clip, spec = centre_clip(path, payload)
    acts = dual_activations(model, clip)
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_figure(
            clip,
            acts,
            Path(tmp) / "maps.png",
            mean=spec.transform.mean,
            std=spec.transform.std,
            title=f"dual point-wise layer of block {acts.block}",
        )
        return base64.b64encode(png.read_bytes()).decode("ascii")


def _predict(path: str, topk: int, maps: bool) -> dict[str, Any]:
    model, payload = _STATE["model"], _STATE["payload"]
    result = predict_files(model, payload, [path], topk=topk, max_side=_STATE["max_side"])[0]
    out = result.to_dict()
    if result.error is None and maps and result.modality == "video":
        try:
            out["maps_png"] = _feature_maps(path)
        except (ValueError, RuntimeError) as exc:  # a model without both pathways has no dual layers
            out["maps_error"] = str(exc)
    return out


class InferenceWorker:
    """One child process holding the model; :meth:`predict` runs one file at a time within ``timeout``."""

    def __init__(self, checkpoint: str | Path, *, timeout: float = 60.0, max_side: int = MAX_SIDE) -> None:
        self.checkpoint, self.timeout, self.max_side = str(checkpoint), float(timeout), max_side
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(1, initializer=_load, initargs=(self.checkpoint, self.max_side))

    def warm(self) -> None:
        """Start the child and wait until its model is loaded (the server is ready when it says so)."""
        self.start()
        assert self._pool is not None
        self._pool.apply(_ready)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def predict(self, path: str | Path, *, topk: int = 5, maps: bool = False) -> dict[str, Any]:
        """``Prediction.to_dict()`` (+ ``maps_png`` for a video when asked); raises WorkerTimeout / WorkerBusy."""
        if not self._lock.acquire(timeout=self.timeout):
            raise WorkerBusy(f"still working on another file after {self.timeout:g} s; try again")
        try:
            self.start()
            assert self._pool is not None
            pending = self._pool.apply_async(_predict, (str(path), topk, maps))
            try:
                return pending.get(self.timeout)
            except mp.TimeoutError:
                self.close()  # kill the child mid-work and start a fresh one for the next request
                self.start()
                raise WorkerTimeout(f"reading and predicting took longer than {self.timeout:g} s; stopped") from None
        finally:
            self._lock.release()
