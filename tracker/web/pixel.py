"""The tracking pixel: GET /i.gif?ad_id=7 (and /track_impression.php?ad_id=7&format=gif).

For <img> tags and e-mail, where no script runs: every answer is the same 1x1 transparent GIF,
never cached, so that each display of the image asks again. The status tells what happened:

    200   counted (or filtered as a bot/prefetch, or a repeated event_id: nothing to retry)
    400   bad or missing ad_id / event_id (the error is in the X-Tracker-Error header)
    429   rate limited (Retry-After)
    503   event store unavailable (Retry-After)

Browsers and mail clients display the GIF whatever the status, so a mistake in a publisher's
tag shows as an error in the browser's network panel, never as a broken image to the reader.
A HEAD is answered like a GET but counts nothing (link checkers, proxies probing the image).
"""

from __future__ import annotations

import base64
import time

from bottle import Bottle, HTTPResponse, request

from ..errors import InvalidEvent
from ..events import IMPRESSION, INVALID_AD_ID, parse_ad_id, parse_event_id
from ..intake import Intake
from ..streams import NewEvent
from .refusals import record
from .responses import ApiError
from .visitors import Visitors

#: A 1x1 transparent GIF (42 bytes: one colour, index 0 transparent).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
HEADERS = {
    "Content-Type": "image/gif",
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
    "Access-Control-Allow-Origin": "*",
}

#: Header of the pixel's error answers (their body is always the GIF): why it was refused.
ERROR_HEADER = "X-Tracker-Error"


def gif(status: int = 200, headers: dict | None = None) -> HTTPResponse:
    return HTTPResponse(GIF, status, {**HEADERS, **(headers or {})})


def single(name: str) -> str | None:
    """A query parameter given at most once; None when absent, InvalidEvent when repeated."""
    values = request.query.getall(name)
    if len(values) > 1:
        raise InvalidEvent(f"{name} was given more than once", field=name)
    return values[0] if values else None


class Pixel:
    """Counts an impression per GET of the image."""

    def __init__(self, intake: Intake, visitors: Visitors, retry_after_s: int):
        self.intake = intake
        self.visitors = visitors
        self.retry_after_s = retry_after_s

    def register(self, app: Bottle) -> None:
        app.route("/i.gif", "GET", self.track)

    def track(self) -> HTTPResponse:
        try:
            ad_id = parse_ad_id(single("ad_id"))
        except InvalidEvent:
            return gif(400, {ERROR_HEADER: INVALID_AD_ID})
        try:
            event_id = parse_event_id(single("event_id"))
        except InvalidEvent as e:
            return gif(400, {ERROR_HEADER: e.message})
        if request.method == "HEAD":
            return gif()
        return self.record(NewEvent(IMPRESSION, ad_id, int(time.time()), event_id))

    def record(self, event: NewEvent) -> HTTPResponse:
        try:
            record(self.intake, [event], self.visitors.current(), self.retry_after_s)
        except ApiError as e:  # the same refusal as every route, in the pixel's form
            return gif(e.status, {**(e.headers or {}), ERROR_HEADER: e.message})
        return gif()
