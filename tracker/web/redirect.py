"""The click redirect: GET /c?ad_id=7&url=https%3A%2F%2Fadvertiser.example%2F&sig=...

Counts a click, then answers 302 to `url`, but only when `sig` is the link's signature
(tracker/signing.py): anything else is a 400 JSON error, so the tracker can never be used to
send visitors to a URL its publishers did not sign. Without TRACKER_CLICK_SECRET the route
answers 501. A filtered visitor (crawler, prefetch) is redirected too, and counted as filtered;
a HEAD is redirected and counts nothing. Make links with `tracker sign-click` or POST /v1/links.
"""

from __future__ import annotations

import time
import urllib.parse

from bottle import Bottle, HTTPResponse, request

from ..errors import InvalidEvent, InvalidLink
from ..events import AD_ID_DETAIL, CLICK, INVALID_AD_ID, parse_ad_id
from ..intake import Intake
from ..signing import ClickSigner, check_url
from ..streams import NewEvent
from .refusals import record
from .responses import ApiError
from .visitors import Visitors

NOT_CONFIGURED = ApiError(501, "Click redirects are not configured",
                          "the tracker has no TRACKER_CLICK_SECRET to check link signatures with")


def query_params() -> dict[str, list[str]]:
    """The query string decoded as UTF-8 (Bottle's own decoding is Latin-1)."""
    try:
        return urllib.parse.parse_qs(request.environ.get("QUERY_STRING", ""), keep_blank_values=True,
                                     errors="strict")
    except UnicodeDecodeError:
        raise ApiError(400, "Malformed query string", "parameters must be UTF-8") from None


def one(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name, [])
    if len(values) != 1:
        raise InvalidLink(f"{name} must be given exactly once")
    return values[0]


class Redirect:
    """GET /c: count the click of a signed link and send the visitor on."""

    def __init__(self, intake: Intake, visitors: Visitors, signer: ClickSigner | None, retry_after_s: int):
        self.intake = intake
        self.visitors = visitors
        self.signer = signer
        self.retry_after_s = retry_after_s

    def register(self, app: Bottle) -> None:
        app.route("/c", "GET", self.click)

    def click(self):
        try:
            ad_id, url = self.signed_target()
            if request.method != "HEAD":
                self.record(ad_id)
        except ApiError as e:
            return e.response()
        return HTTPResponse("", 302, {"Location": url, "Cache-Control": "no-store"})

    def signed_target(self) -> tuple[int, str]:
        """The (ad_id, url) of a correctly signed link, or ApiError(400/501)."""
        if self.signer is None:
            raise NOT_CONFIGURED
        params = query_params()
        try:
            ad_id = parse_ad_id(one(params, "ad_id"))
        except (InvalidEvent, InvalidLink):
            raise ApiError(400, INVALID_AD_ID, f"{AD_ID_DETAIL}, given once") from None
        try:
            url = check_url(one(params, "url"))
            self.signer.verify(ad_id, url, one(params, "sig"))
        except InvalidLink as e:
            raise ApiError(400, "Invalid click link", e.message) from None
        return ad_id, url

    def record(self, ad_id: int) -> None:
        record(self.intake, [NewEvent(CLICK, ad_id, int(time.time()))], self.visitors.current(), self.retry_after_s,
               "the click was not counted; retry")
