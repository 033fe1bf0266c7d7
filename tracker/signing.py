"""Signed click links: /c redirects only to URLs signed with the tracker's secret.

    sig = base64url(HMAC-SHA256(TRACKER_CLICK_SECRET, "click:v1\\n<ad_id>\\n<url>")), unpadded

The message names its purpose and version, and the ad id (digits only) and the URL (no control
characters) are separated by a newline, so no two (ad_id, url) pairs sign the same bytes. A
signature is checked in constant time. Only absolute http(s) URLs of printable ASCII are
signed or followed (non-ASCII characters must be percent-encoded, as in any URL on the wire).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

from .errors import InvalidLink

#: Longest target URL (characters); browsers and proxies limit whole URLs to a few kB.
MAX_URL_CHARS = 2048
SCHEMES = ("http", "https")


def check_url(url: str) -> str:
    """Return `url` if it may be a click target, else raise InvalidLink saying why."""
    if not url or len(url) > MAX_URL_CHARS:
        raise InvalidLink(f"url must be 1 to {MAX_URL_CHARS} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise InvalidLink("url must be printable ASCII without spaces (percent-encode the rest)")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL" and the like
        raise InvalidLink("url is not a valid URL") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise InvalidLink("url must be an absolute http:// or https:// URL with a host")
    return url


class ClickSigner:
    """Signs and verifies (ad_id, url) pairs with the click secret."""

    def __init__(self, secret: str):
        self._key = secret.encode()

    def sign(self, ad_id: int, url: str) -> str:
        message = f"click:v1\n{ad_id}\n{check_url(url)}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, ad_id: int, url: str, sig: str) -> None:
        """Raise InvalidLink unless `sig` is the signature of (ad_id, url)."""
        expected = self.sign(ad_id, url).encode()
        if not hmac.compare_digest(expected, sig.encode("utf-8", "replace")):
            raise InvalidLink("the signature does not match this ad_id and url")

    def link(self, base_url: str, ad_id: int, url: str) -> str:
        """The full /c link for (ad_id, url) on the tracker at `base_url`."""
        query = urllib.parse.urlencode({"ad_id": ad_id, "url": url, "sig": self.sign(ad_id, url)})
        return f"{base_url.rstrip('/')}/c?{query}"


def click_signer(secret: str) -> ClickSigner | None:
    """The signer of TRACKER_CLICK_SECRET, or None when no secret is configured."""
    return ClickSigner(secret) if secret else None


def secret_matches(given: bytes, expected: bytes) -> bool:
    """Constant-time comparison of a presented secret (a token, basic credentials) with the one
    expected. Their digests are compared, so neither the time nor an early length mismatch
    tells an attacker anything about the expected secret, its length included."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())
