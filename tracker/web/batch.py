"""POST /v1/events: many events in one request, stored in one Redis round trip.

    [{"type": "impression", "ad_id": 7, "event_id": "5f0c...", "ts": 1795539479}, ...]

sent as application/json, or as text/plain (what navigator.sendBeacon sends). Validation is
all or nothing: one bad item refuses the whole batch with 400 and an error per bad item, and
stores nothing. See the README's "Batch API" for the full contract.
"""

from __future__ import annotations

import time

from bottle import Bottle

from ..errors import InvalidEvent
from ..events import INVALID_AD_ID, KINDS, parse_ad_id, parse_client_ts, parse_event_id
from ..intake import Intake, Outcome
from ..streams import NewEvent
from .ingest import JSON_TYPES, media_type, parse_json, read_body
from .refusals import record
from .responses import NO_STORE, ApiError, json_response, preflight_response
from .visitors import Visitors

TYPES = {kind.name: kind for kind in KINDS}
INVALID_TYPE = f"type must be one of {', '.join(repr(name) for name in TYPES)}"


class InvalidBatch(ApiError):
    """A batch with bad items: 400, with the index and error of each."""

    def __init__(self, items: list[dict]):
        super().__init__(400, "Invalid events", f"{len(items)} item(s) refused; nothing was stored")
        self.items = items

    def response(self):
        payload = {"error": self.message, "detail": self.detail, "items": self.items}
        return json_response(payload, 400, NO_STORE)


def read_items(max_body_bytes: int, max_events: int) -> list:
    """The request's JSON array of events, refused whole when it is not one."""
    if media_type() not in JSON_TYPES:
        raise ApiError(415, "Unsupported Content-Type", "send the JSON array as application/json or text/plain")
    items = parse_json(read_body(max_body_bytes), 'an array such as [{"type":"impression","ad_id":7}]')
    if not isinstance(items, list):
        raise ApiError(400, "Malformed JSON body", 'expected an array such as [{"type":"impression","ad_id":7}]')
    if not items:
        raise ApiError(400, "No events", "the array is empty")
    if len(items) > max_events:
        raise ApiError(400, "Too many events", f"at most {max_events} events per request, got {len(items)}")
    return items


def parse_item(item, now: int, max_skew_ms: int) -> NewEvent:
    """One array item as an event to store, or InvalidEvent with the first thing wrong with it."""
    if not isinstance(item, dict):
        raise InvalidEvent('each event must be an object such as {"type":"impression","ad_id":7}')
    kind = TYPES.get(item.get("type")) if isinstance(item.get("type"), str) else None
    if kind is None:
        raise InvalidEvent(INVALID_TYPE, field="type")
    try:
        ad_id = parse_ad_id(item.get("ad_id"))
    except InvalidEvent:
        raise InvalidEvent(INVALID_AD_ID, field="ad_id") from None
    event_id = parse_event_id(item.get("event_id"))
    ts = now if item.get("ts") is None else parse_client_ts(item["ts"], now, max_skew_ms)
    return NewEvent(kind, ad_id, ts, event_id)


def parse_items(items: list, now: int, max_skew_ms: int) -> list[NewEvent]:
    """Every item as an event, or InvalidBatch naming each bad one."""
    events, errors = [], []
    for index, item in enumerate(items):
        try:
            events.append(parse_item(item, now, max_skew_ms))
        except InvalidEvent as e:
            errors.append({"index": index, "field": e.field, "error": e.message})
    if errors:
        raise InvalidBatch(errors)
    return events


def answer(outcome: Outcome, count: int, now: int) -> dict:
    """The 200 answer: totals, and per event (in request order) its stream ID and status."""
    if outcome.filtered is not None:
        events = [{"stream_id": None, "status": "filtered"}] * count
        return {"status": "success", "accepted": 0, "duplicates": 0, "filtered": count,
                "reason": outcome.filtered, "ts": now, "events": events}
    events = [{"stream_id": s.entry_id, "status": "stored" if s.new else "duplicate"} for s in outcome.stored]
    duplicates = sum(not s.new for s in outcome.stored)
    return {"status": "success", "accepted": count - duplicates, "duplicates": duplicates, "filtered": 0,
            "ts": now, "events": events}


class BatchApi:
    """POST /v1/events (and its CORS preflight)."""

    def __init__(self, intake: Intake, visitors: Visitors, max_body_bytes: int, max_events: int,
                 max_skew_ms: int, retry_after_s: int):
        self.intake = intake
        self.visitors = visitors
        self.max_body_bytes = max_body_bytes
        self.max_events = max_events
        self.max_skew_ms = max_skew_ms
        self.retry_after_s = retry_after_s

    def register(self, app: Bottle) -> None:
        app.route("/v1/events", "POST", self.post)
        app.route("/v1/events", "OPTIONS", preflight_response)

    def post(self):
        try:
            return self.record()
        except ApiError as e:
            return e.response()

    def record(self):
        now = int(time.time())
        events = parse_items(read_items(self.max_body_bytes, self.max_events), now, self.max_skew_ms)
        outcome = record(self.intake, events, self.visitors.current(), self.retry_after_s,
                         "retry with the same event ids")
        return json_response(answer(outcome, len(events), now), 200, NO_STORE)
