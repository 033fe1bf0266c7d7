"""What must hold for every request to an ingest route, whatever it carried.

- The answer is a 2xx, a 4xx (or the redirect's 302): never a 5xx.
- Its form is the route's (see routes.py): JSON with the CORS headers, an error being an object
  with an "error" string; or the pixel's GIF; or a redirect to the signed URL.
- Nothing malformed reaches a stream: every new entry decodes with `decode_entry`.
- Nothing is stored without a success, and a success stores what it says, nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from tests.fuzz.probes import Probe
from tests.fuzz.routes import Route
from tracker.events import decode_entry
from tracker.web.batch import TYPES
from tracker.web.pixel import GIF
from tracker.web.responses import CORS_HEADERS


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())


def check_answer(route: Route, probe: Probe, answer: Answer) -> None:
    where = f"{probe.method} {probe.path[:200]} ({probe.content_type}) -> {answer.status} {answer.body[:200]!r}"
    assert answer.status < 500, where
    assert 200 <= answer.status < 300 or 400 <= answer.status < 500 or answer.status == 302, where
    if answer.header("Content-Type") == "image/gif":
        assert route.answers_gif(probe.query) and probe.method in ("GET", "HEAD", "POST"), where
        assert answer.header("Access-Control-Allow-Origin") == "*", where
        assert answer.body in (GIF, b""), where  # HEAD: no body
        assert answer.status < 400 or answer.header("X-Tracker-Error"), where
        return
    if answer.status == 302:
        assert route.answer == "redirect", where
        assert answer.header("Location") == probe.query["url"][0], where
        return
    assert answer.header("Content-Type") == "application/json", where
    for name, value in CORS_HEADERS.items():
        assert answer.header(name) == value, where
    if answer.body:
        payload = json.loads(answer.body)
        if answer.status >= 400:
            assert isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"], where
    else:  # no body: a CORS preflight, or any answer to a HEAD
        assert probe.method == "HEAD" or (probe.method == "OPTIONS" and answer.status == 200), where


class StreamWatch:
    """The entries added to the event streams since the last look."""

    def __init__(self, client: redis.Redis, streams: list[str]):
        self.client = client
        self.last = {stream: b"0-0" for stream in streams}
        self.stored = {stream: [] for stream in streams}  # every entry seen, for the record

    def new(self) -> dict[str, list[tuple[bytes, dict]]]:
        added = {}
        for stream, last in self.last.items():
            entries = self.client.xrange(stream, f"({last.decode()}", "+")
            if entries:
                self.last[stream] = entries[-1][0]
                self.stored[stream] += [entry_id for entry_id, _ in entries]
            added[stream] = entries
        return added


def check_stored(route: Route, probe: Probe, answer: Answer, added: dict[str, list]) -> None:
    """Every new entry decodes, and the new entries are exactly what the answer says was stored."""
    where = f"{probe.method} {probe.path[:200]} -> {answer.status} {answer.body[:300]!r}"
    for stream, entries in added.items():
        for entry_id, fields in entries:
            decode_entry(entry_id, fields)  # raises InvalidEvent: a malformed entry reached the stream
    stored = {(stream, entry_id.decode()) for stream, entries in added.items() for entry_id, _ in entries}
    assert stored == expected_entries(route, probe, answer, added), where


def expected_entries(route: Route, probe: Probe, answer: Answer, added: dict[str, list]) -> set:
    if answer.status != route.success or probe.method in ("OPTIONS", "HEAD"):
        return set()
    if route.answer == "json" and answer.header("Content-Type") == "application/json":
        payload = json.loads(answer.body)
        if route.batch:  # the answer lists the request's events in order
            streams = [TYPES[item["type"]].stream for item in json.loads(probe.body)]
            return {(s, e["stream_id"]) for s, e in zip(streams, payload["events"]) if e["status"] == "stored"}
        if payload["stream_id"] is None or payload.get("duplicate"):
            return set()
        return {(route.kind.stream, payload["stream_id"])}
    # the pixel and the redirect do not say: at most one entry, in their stream
    mine = added.get(route.kind.stream, [])
    assert len(mine) <= 1 and all(not entries for stream, entries in added.items() if stream != route.kind.stream)
    return {(route.kind.stream, entry_id.decode()) for entry_id, _ in mine}
