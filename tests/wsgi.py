"""A minimal in-process WSGI client: tests call the app without a server."""

from __future__ import annotations

import io
import json
import urllib.parse
from dataclasses import dataclass
from wsgiref.util import setup_testing_defaults


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())


def call(app, method: str, path: str, body: bytes | str = b"", content_type: str | None = None,
         headers: dict[str, str] | None = None, content_length: int | None = None,
         environ_extra: dict[str, str] | None = None) -> Response:
    if isinstance(body, str):
        body = body.encode()
    target = urllib.parse.urlsplit(path)
    environ: dict = {
        "REQUEST_METHOD": method,
        "PATH_INFO": urllib.parse.unquote(target.path),
        "QUERY_STRING": target.query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body) if content_length is None else content_length),
    }
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ.update(environ_extra or {})  # e.g. REMOTE_ADDR, the peer's address
    setup_testing_defaults(environ)
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = dict(response_headers)

    chunks = app(environ, start_response)
    data = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return Response(captured["status"], captured["headers"], data)
