"""Run a real uvicorn server on a free loopback port, and speak HTTP to it with the standard library."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse


@contextmanager
def running(app: Any, timeout: float = 120.0) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of ``app`` served by uvicorn in a thread (its lifespan included)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload: field -> (file name, bytes)."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, (name, data) in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> tuple[int, Any]:
    """(status, JSON body or text) of one request; ``chunked`` sends the body without a Content-Length."""
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    try:
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        if chunked:
            conn.request(
                method,
                path,
                body=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
                headers=headers or {},
                encode_chunked=True,
            )
        else:
            conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(data) if "json" in kind else data.decode()
    finally:
        conn.close()


def post_file(url: str, name: str, data: bytes, field: str = "file", chunked: bool = False) -> tuple[int, Any]:
    body, kind = multipart({field: (name, data)})
    return request(url, "POST", body, {"Content-Type": kind}, chunked=chunked)
