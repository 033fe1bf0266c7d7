"""JSON answers with the headers the PHP system's clients rely on.

Every answer of the API is `application/json` and carries the CORS headers below, errors
included; an error body is `{"error": "..."}` (plus, here, an optional `detail`).
"""

from __future__ import annotations

import json

from bottle import HTTPResponse

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    # lets tracker.js on a publisher's page read how long to wait after a 429 or 503
    "Access-Control-Expose-Headers": "Retry-After",
}
JSON_HEADERS = {"Content-Type": "application/json", **CORS_HEADERS}
#: Tracking answers must never be served from a cache: each request is an event.
NO_STORE = {"Cache-Control": "no-store"}


def dumps(payload) -> str:
    """Compact JSON, as PHP's json_encode writes it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class JsonResponse(HTTPResponse):
    """An HTTPResponse carrying the API's headers, validated once rather than on every answer.

    Bottle checks and normalises each header a response is given (add_header); on the ingest
    path that was a measurable share of a request's time (see the README's Performance).
    """

    def __init__(self, body: str, status: int, headers: dict[str, list[str]]):
        super().__init__(body, status)
        self._headers = {name: values[:] for name, values in headers.items()}  # apply() shares the dict


def prepared_headers(headers: dict[str, str]) -> dict[str, list[str]]:
    """`headers` in the form a Bottle response keeps them, checked by Bottle once."""
    response = HTTPResponse("", 200, headers)
    return response._headers


#: The headers of a tracking answer: JSON, CORS, never cached.
TRACKED_HEADERS = prepared_headers({**JSON_HEADERS, **NO_STORE})


def json_response(payload, status: int = 200, headers: dict | None = None) -> HTTPResponse:
    return HTTPResponse(dumps(payload), status, {**JSON_HEADERS, **(headers or {})})


def tracked_response(ad_id: int, stream_id: str, ts: int) -> HTTPResponse:
    """The answer to a stored event, as the PHP system wrote it: {"status":"success",...}.

    Formatted directly: every value is an int or a Redis entry ID ("<digits>-<digits>").
    """
    body = f'{{"status":"success","ad_id":{int(ad_id)},"stream_id":"{stream_id}","ts":{int(ts)}}}'
    return JsonResponse(body, 200, TRACKED_HEADERS)


def error_response(status: int, message: str, detail: str | None = None,
                   headers: dict | None = None) -> HTTPResponse:
    payload = {"error": message}
    if detail:
        payload["detail"] = detail
    return json_response(payload, status, {**NO_STORE, **(headers or {})})


def preflight_response() -> HTTPResponse:
    """The answer to OPTIONS: 200, empty body, CORS headers."""
    return HTTPResponse("", 200, {**JSON_HEADERS, "Access-Control-Max-Age": "86400"})


class ApiError(Exception):
    """Raised inside a handler to answer with a JSON error."""

    def __init__(self, status: int, message: str, detail: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers

    def response(self) -> HTTPResponse:
        return error_response(self.status, self.message, self.detail, self.headers)
