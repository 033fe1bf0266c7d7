"""The ingest routes: one event per request, stored before the answer is sent.

    /track_impression.php, /track_click.php    the PHP system's URLs, answered as it did
    /v1/impressions, /v1/clicks                the same, under clean names

Each accepts GET ?ad_id=, a POST with a JSON body {"ad_id": 123} (also sent as text/plain, as
sendBeacon does), a form body (urlencoded or multipart), or a POST with an empty body and
?ad_id= in the URL; OPTIONS answers the CORS preflight. A 200 means the event is in Redis.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse

from bottle import Bottle, request

from ..errors import InvalidEvent, StreamUnavailable
from ..events import CLICK, IMPRESSION, INVALID_AD_ID, MAX_AD_ID, Kind, parse_ad_id
from ..streams import Producer
from .responses import ApiError, preflight_response, tracked_response

log = logging.getLogger(__name__)

ROUTES = {
    IMPRESSION: ("/track_impression.php", "/v1/impressions"),
    CLICK: ("/track_click.php", "/v1/clicks"),
}
AD_ID_DETAIL = f"ad_id must be a whole number from 1 to {MAX_AD_ID}"
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


def media_type() -> str:
    return request.content_type.split(";", 1)[0].strip().lower()


def body_ad_ids(body: bytes) -> list:
    """The ad_id values a POST body carries, by its content type."""
    kind = media_type()
    if kind in JSON_TYPES:
        return json_ad_ids(body)
    if kind == FORM_TYPE:
        return urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get("ad_id", [])
    raise ApiError(415, "Unsupported Content-Type",
                   "send application/json, text/plain (JSON), application/x-www-form-urlencoded or multipart/form-data")


def json_ad_ids(body: bytes) -> list:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Malformed JSON body", 'expected an object such as {"ad_id": 123}') from None
    if not isinstance(data, dict):
        raise ApiError(400, "Malformed JSON body", 'expected an object such as {"ad_id": 123}')
    return [data["ad_id"]] if "ad_id" in data else []


def query_ad_ids() -> list:
    """The ad_id values of the query string.

    The usual query, `ad_id=<value>` alone with nothing to decode, is read as is; anything
    else goes through Bottle's parser (which builds a dict of every parameter).
    """
    query = request.environ.get("QUERY_STRING", "")
    if query.startswith("ad_id=") and not any(c in query for c in "&;%+"):
        return [query[6:]]
    return request.query.getall("ad_id")


def request_ad_id(max_body_bytes: int) -> int:
    """The ad id of this request, wherever the client put it; ApiError(400/413/415) otherwise."""
    values = query_ad_ids()
    if request.method == "POST":
        if media_type() == MULTIPART_TYPE:
            read_limit_checked(max_body_bytes)
            values = request.forms.getall("ad_id") or values
        else:
            body = read_body(max_body_bytes)
            if body.strip():
                values = body_ad_ids(body)
    if len(values) > 1:
        raise ApiError(400, INVALID_AD_ID, "ad_id was given more than once")
    try:
        return parse_ad_id(values[0] if values else None)
    except InvalidEvent:
        raise ApiError(400, INVALID_AD_ID, AD_ID_DETAIL) from None


def read_limit_checked(max_bytes: int) -> None:
    if request.content_length > max_bytes or request.content_length < 0:
        raise ApiError(413, "Request body too large", f"at most {max_bytes} bytes, with a Content-Length")


class Ingest:
    """Validates, stores and answers single events."""

    def __init__(self, producer: Producer, max_body_bytes: int, retry_after_s: int):
        self.producer = producer
        self.max_body_bytes = max_body_bytes
        self.retry_after_s = retry_after_s

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
        if request.method == "HEAD":  # a HEAD is no event (link checkers, prefetchers)
            raise ApiError(405, "Method not allowed", "use GET or POST", {"Allow": "GET, POST, OPTIONS"})
        ad_id = request_ad_id(self.max_body_bytes)
        ts = int(time.time())
        try:
            stream_id = self.producer.add(kind, ad_id, ts)
        except StreamUnavailable as e:
            log.warning("refused a %s: %s", kind.name, e)
            raise ApiError(503, "Event store unavailable, retry later", None,
                           {"Retry-After": str(self.retry_after_s)}) from None
        return tracked_response(ad_id, stream_id, ts)
