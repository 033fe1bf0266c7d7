"""The ingest routes: one event per request, stored before the answer is sent.

    /track_impression.php, /track_click.php    the PHP system's URLs, answered as it did
    /v1/impressions, /v1/clicks                the same, under clean names

Each accepts GET ?ad_id=, a POST with a JSON body {"ad_id": 123} (also sent as text/plain, as
sendBeacon does), a form body (urlencoded or multipart), or a POST with an empty body and
?ad_id= in the URL; OPTIONS answers the CORS preflight. A 200 means the event is in Redis.
An optional `event_id` (wherever ad_id may be) makes a retry harmless: it is stored once.
"""

from __future__ import annotations

import json
import time
import urllib.parse

from bottle import Bottle, request

from ..errors import InvalidEvent
from ..events import CLICK, IMPRESSION, AD_ID_DETAIL, INVALID_AD_ID, Kind, parse_ad_id, parse_event_id
from ..intake import Intake
from ..streams import NewEvent
from .refusals import record
from .responses import NO_STORE, ApiError, json_response, preflight_response, tracked_response

ROUTES = {
    IMPRESSION: ("/track_impression.php", "/v1/impressions"),
    CLICK: ("/track_click.php", "/v1/clicks"),
}
JSON_TYPES = ("application/json", "text/plain")
FORM_TYPE = "application/x-www-form-urlencoded"
MULTIPART_TYPE = "multipart/form-data"


def read_body(max_bytes: int) -> bytes:
    """The request body, refused with 413 beyond `max_bytes`."""
    length = request.content_length
    if length > max_bytes:
        raise ApiError(413, "Request body too large", f"at most {max_bytes} bytes")
    stream = request.environ["wsgi.input"]
    body = stream.read(length) if length >= 0 else stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ApiError(413, "Request body too large", f"at most {max_bytes} bytes")
    return body


def parse_json(body: bytes, expected: str):
    """The JSON document of a request body, or ApiError(400) naming what was `expected`.

    A body the parser cannot take (not JSON, not UTF-8, or nested deeper than Python recurses)
    is the client's mistake, never a 500.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "Malformed JSON body", f"expected {expected}") from None


def media_type() -> str:
    return request.content_type.split(";", 1)[0].strip().lower()


def body_values(body: bytes, names: tuple[str, ...]) -> dict[str, list]:
    """The values of `names` (ad_id, event_id) a POST body carries, parsed once by its content type."""
    kind = media_type()
    if kind in JSON_TYPES:
        data = parse_json(body, 'an object such as {"ad_id": 123}')
        if not isinstance(data, dict):
            raise ApiError(400, "Malformed JSON body", 'expected an object such as {"ad_id": 123}')
        return {name: [data[name]] if name in data else [] for name in names}
    if kind == FORM_TYPE:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: form.get(name, []) for name in names}
    raise ApiError(415, "Unsupported Content-Type",
                   "send application/json, text/plain (JSON), application/x-www-form-urlencoded or multipart/form-data")


def plain_query_ad_id() -> str | None:
    """The value of a query string that is `ad_id=<digits>` alone, else None.

    The usual single-event request; it is read as is, without Bottle's parser (which builds a
    dict of every parameter: a measurable share of the request's time, see the README's
    Performance).
    """
    query = request.environ.get("QUERY_STRING", "")
    return query[6:] if query[:6] == "ad_id=" and query[6:].isdigit() else None


def request_values(max_body_bytes: int) -> dict[str, list]:
    """The ad_id and event_id values of this request, from its body when it has one, else its URL."""
    names = ("ad_id", "event_id")
    plain = plain_query_ad_id()
    if plain is not None:
        values = {"ad_id": [plain], "event_id": []}
    else:
        values = {name: request.query.getall(name) for name in names}
    if request.method == "POST":
        if media_type() == MULTIPART_TYPE:
            read_limit_checked(max_body_bytes)
            values = {name: request.forms.getall(name) or values[name] for name in names}
        else:
            body = read_body(max_body_bytes)
            if body.strip():
                query = values
                values = body_values(body, names)
                # An event_id in the URL beside a body is still this event's id: dropping it would
                # store a retry twice. The same id in both places is one id; two ids are refused.
                values["event_id"] += [v for v in query["event_id"] if v not in values["event_id"]]
    return values


def request_ad_id(values: dict[str, list]) -> int:
    """The ad id among this request's `request_values`; ApiError(400) when missing, bad or repeated."""
    values = values["ad_id"]
    if len(values) > 1:
        raise ApiError(400, INVALID_AD_ID, "ad_id was given more than once")
    try:
        return parse_ad_id(values[0] if values else None)
    except InvalidEvent:
        raise ApiError(400, INVALID_AD_ID, AD_ID_DETAIL) from None


def request_event_id(values: dict[str, list]) -> str | None:
    """The optional event id of this request; ApiError(400) when malformed or repeated."""
    given = values["event_id"]
    if len(given) > 1:
        raise ApiError(400, "Invalid event_id", "event_id was given more than once")
    try:
        return parse_event_id(given[0] if given else None)
    except InvalidEvent as e:
        raise ApiError(400, "Invalid event_id", e.message) from None


def read_limit_checked(max_bytes: int) -> None:
    if request.content_length > max_bytes or request.content_length < 0:
        raise ApiError(413, "Request body too large", f"at most {max_bytes} bytes, with a Content-Length")


class Ingest:
    """Validates, stores and answers single events."""

    def __init__(self, intake: Intake, visitors, max_body_bytes: int, retry_after_s: int, pixel=None):
        self.intake = intake
        self.visitors = visitors  # .current() -> the Visitor of this request (tracker/web/visitors.py)
        self.max_body_bytes = max_body_bytes
        self.retry_after_s = retry_after_s
        self.pixel = pixel  # answers GET /track_impression.php?format=gif (tracker/web/pixel.py)

    def register(self, app: Bottle) -> None:
        for kind, paths in ROUTES.items():
            for path in paths:
                app.route(path, ["GET", "POST"], self.handler(kind))
                app.route(path, "OPTIONS", preflight_response)

    def handler(self, kind: Kind):
        def track():
            try:
                return self.track(kind)
            except ApiError as e:
                return e.response()
        track.__name__ = f"track_{kind.name}"
        return track

    def track(self, kind: Kind):
        if kind is IMPRESSION and self.pixel is not None and plain_query_ad_id() is None \
                and request.query.get("format") == "gif":
            return self.pixel.track()
        if request.method == "HEAD":  # a HEAD is no event (link checkers, prefetchers)
            raise ApiError(405, "Method not allowed", "use GET or POST", {"Allow": "GET, POST, OPTIONS"})
        values = request_values(self.max_body_bytes)
        ad_id = request_ad_id(values)
        event_id = request_event_id(values)
        ts = int(time.time())
        outcome = record(self.intake, [NewEvent(kind, ad_id, ts, event_id)], self.visitors.current(),
                         self.retry_after_s)
        if outcome.filtered is None and outcome.stored[0].new:  # the usual answer, formatted directly
            return tracked_response(ad_id, outcome.stored[0].entry_id, ts)
        return json_response(success(ad_id, ts, outcome), 200, NO_STORE)


def success(ad_id: int, ts: int, outcome) -> dict:
    """The PHP system's answer; `duplicate` or `filtered` is added only when it applies."""
    if outcome.filtered is not None:
        return {"status": "success", "ad_id": ad_id, "stream_id": None, "ts": ts, "filtered": outcome.filtered}
    stored = outcome.stored[0]
    answer = {"status": "success", "ad_id": ad_id, "stream_id": stored.entry_id, "ts": ts}
    if not stored.new:
        answer["duplicate"] = True
    return answer
