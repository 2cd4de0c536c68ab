"""The FastAPI application of ``unidual serve``: the page, ``POST /api/predict`` and ``GET /api/info``.

``POST /api/predict`` takes one multipart field ``file`` (``?topk=5``, ``?maps=1`` for the feature
maps of a video) and answers ``{"path", "modality", "top": {head: [{"class", "score"}]}, ...}``.
Every failure is a JSON ``{"error": message}`` with a 4xx status: 400 no ``file`` field or a
malformed form, 413 an upload over the size limit (refused from its Content-Length, or counted
while it streams when it has none), 422 a file that is not a readable image or video or that
took longer than the time limit, 503 while another file is still being worked on.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from unidual.checkpoint import load_model
from unidual.evaluate.predict import MAX_SIDE, label_maps
from unidual.models import ImageVideoNet
from unidual.serve.worker import InferenceWorker, WorkerBusy, WorkerTimeout

PAGE = Path(__file__).with_name("page.html")
Message = MutableMapping[str, Any]


class UploadTooLarge(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _counted(receive: Callable[[], Awaitable[Message]], limit: int) -> Callable[[], Awaitable[Message]]:
    """``receive`` that raises UploadTooLarge once the body passes ``limit`` bytes (chunked uploads)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadTooLarge
        return message

    return wrapped


def _suffix(filename: str | None) -> str:
    """The upload's extension (the modality is read from it first), reduced to safe characters."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def model_info(checkpoint: str | Path) -> dict[str, Any]:
    """What the page shows about the model; loading it here also fails fast on a bad checkpoint."""
    model, payload = load_model(checkpoint, deploy=True)
    net = cast(ImageVideoNet, model)
    maps = label_maps(payload)
    return {
        "checkpoint": str(checkpoint),
        "model": net.name,
        "pathways": list(net.pathways),
        "heads": {h: len(maps.get(h, [])) for h in net.spec["heads"]},
    }


def create_app(
    checkpoint: str | Path,
    *,
    max_upload_mb: float = 64.0,
    timeout: float = 60.0,
    max_side: int = MAX_SIDE,
) -> FastAPI:
    """The application for one checkpoint; the worker process starts (and loads the model) with it."""
    info = {**model_info(checkpoint), "max_upload_mb": max_upload_mb, "timeout_s": timeout}
    limit = int(max_upload_mb * 1024 * 1024)
    worker = InferenceWorker(checkpoint, timeout=timeout, max_side=max_side)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(worker.warm)
        try:
            yield
        finally:
            worker.close()

    app = FastAPI(title="unidual serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.worker = worker

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.read_text()

    @app.get("/api/info")
    async def api_info() -> dict[str, Any]:
        return info

    @app.post("/api/predict")
    async def api_predict(request: Request, topk: int = 5, maps: bool = False) -> JSONResponse:
        if not 1 <= topk <= 100:
            return _error(400, f"topk must be between 1 and 100, got {topk}")
        too_large = f"the upload is over the {max_upload_mb:g} MB limit (unidual serve --max-upload-mb)"
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return _error(413, too_large)
        try:
            form = await Request(request.scope, _counted(request.receive, limit)).form(max_files=1, max_fields=8)
        except UploadTooLarge:
            return _error(413, too_large)
        except Exception as exc:  # not multipart, a malformed body, too many parts
            return _error(400, f"expected a multipart/form-data upload with a field 'file' ({exc})")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _error(400, "no file: send the image or video in the multipart field 'file'")
        name = upload.filename or "upload"
        with tempfile.TemporaryDirectory(prefix="unidual-serve-") as tmp:
            path = Path(tmp) / f"upload{_suffix(name)}"
            path.write_bytes(await upload.read())
            try:
                result = await run_in_threadpool(worker.predict, path, topk=topk, maps=maps)
            except WorkerTimeout as exc:
                return _error(422, f"{name}: {exc}")
            except WorkerBusy as exc:
                return _error(503, str(exc))
            except Exception as exc:  # a fault of ours, not of the file: still a JSON answer
                return _error(500, f"{name}: {type(exc).__name__}: {exc}")
            if result.get("error"):  # name the upload, not the temporary file it was saved to
                why = str(result["error"]).replace(str(path), name)
                return _error(422, f"{name}: not an image or video this model can read ({why})")
        result["path"] = name
        return JSONResponse(result)

    return app
