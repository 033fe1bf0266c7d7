"""POST /v1/links: signed click links for publishers' systems, behind a bearer token.

    curl -H "Authorization: Bearer $TRACKER_LINK_API_TOKEN" -H 'Content-Type: application/json' \\
         -d '{"ad_id": 7, "url": "https://advertiser.example/landing"}' https://tracker.example/v1/links

answers {"ad_id":7,"url":"...","sig":"...","link":"https://tracker.example/c?ad_id=7&url=...&sig=..."};
a JSON array of such objects (up to TRACKER_BATCH_MAX_EVENTS) answers an array. Without a
token configured the API answers 403 and signs nothing: an open signer would make /c an open
redirect. The check is `authorized()`, one function, so another scheme can replace it.
"""

from __future__ import annotations


from bottle import Bottle, request

from ..errors import InvalidEvent, InvalidLink
from ..events import INVALID_AD_ID, parse_ad_id
from ..signing import ClickSigner, secret_matches
from .ingest import parse_json, read_body
from .responses import NO_STORE, ApiError, json_response
from .redirect import NOT_CONFIGURED


def authorized(environ: dict, token: str) -> bool:
    """Does the request carry `Authorization: Bearer <token>`? Constant-time comparison."""
    scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and secret_matches(
        given.strip().encode("utf-8", "replace"), token.encode())


class LinkApi:
    def __init__(self, signer: ClickSigner | None, token: str, link_base: str, max_body_bytes: int, max_links: int):
        self.signer = signer
        self.token = token
        self.link_base = link_base
        self.max_body_bytes = max_body_bytes
        self.max_links = max_links

    def register(self, app: Bottle) -> None:
        app.route("/v1/links", "POST", self.post)

    def post(self):
        try:
            self.check_access()
            return json_response(self.sign_body(), 200, NO_STORE)
        except ApiError as e:
            return e.response()

    def check_access(self) -> None:
        if not self.token:
            raise ApiError(403, "Link API disabled", "set TRACKER_LINK_API_TOKEN to enable it")
        if not authorized(request.environ, self.token):
            raise ApiError(401, "Unauthorized", "send Authorization: Bearer <TRACKER_LINK_API_TOKEN>",
                           {"WWW-Authenticate": 'Bearer realm="tracker"'})
        if self.signer is None:
            raise NOT_CONFIGURED

    def sign_body(self):
        data = parse_json(read_body(self.max_body_bytes), '{"ad_id": 7, "url": "https://..."} or an array')
        if isinstance(data, list):
            if not 1 <= len(data) <= self.max_links:
                raise ApiError(400, "Too many links", f"send 1 to {self.max_links} links per request")
            return [self.sign_one(item) for item in data]
        return self.sign_one(data)

    def sign_one(self, item) -> dict:
        if not isinstance(item, dict):
            raise ApiError(400, "Malformed JSON body", 'each link is an object {"ad_id": 7, "url": "https://..."}')
        try:
            ad_id = parse_ad_id(item.get("ad_id"))
        except InvalidEvent:
            raise ApiError(400, INVALID_AD_ID) from None
        url = item.get("url")
        try:
            if not isinstance(url, str):
                raise InvalidLink("url must be a string")
            sig = self.signer.sign(ad_id, url)
        except InvalidLink as e:
            raise ApiError(400, "Invalid url", e.message) from None
        return {"ad_id": ad_id, "url": url, "sig": sig, "link": self.signer.link(self.link_base, ad_id, url)}
