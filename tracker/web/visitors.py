"""Who sent a request, as far as tracking needs to know: its client IP and whether it is filtered.

The client IP is the peer's address, unless the peer is a trusted proxy
(TRACKER_TRUSTED_PROXIES, IPs or CIDRs): then X-Forwarded-For is read from the right, skipping
trusted proxies, and the first address that is not one is the client. An address a client
wrote itself at the left of the header is never believed over a proxy's. From a peer that is
not trusted, every forwarding header (X-Forwarded-*, Forwarded) is removed from the request
before any route sees it, as waitress does by default.

Nothing here is stored: the decision (filtered or not, and the rate limit's keyed hash of the
IP) is all that leaves the request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from bottle import Bottle, request

from ..bots import BotFilter
from ..intake import Visitor

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Forwarding headers (WSGI names) that only a trusted proxy may set.
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
                      "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_BY", "HTTP_FORWARDED")


class TrustedProxies:
    """The proxies whose X-Forwarded-For is believed."""

    def __init__(self, networks: Sequence[IPNetwork]):
        self.networks = tuple(networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_ip(self, environ: dict) -> str:
        """The client's address: the peer's, or the last untrusted hop its trusted proxies reported."""
        client = environ.get("REMOTE_ADDR", "")
        if not self.trusts(client):
            return client
        for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            hop = hop.strip()
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return client  # garbage (or nothing) from here on: the last proxy that spoke is the client
            if not self.trusts(hop):
                return hop
            client = hop
        return client

    def drop_untrusted_headers(self, environ: dict) -> None:
        if not any(name in environ for name in FORWARDING_HEADERS):
            return  # nothing to drop: no need to parse the peer's address (most direct requests)
        if not self.trusts(environ.get("REMOTE_ADDR", "")):
            for name in FORWARDING_HEADERS:
                environ.pop(name, None)


class Visitors:
    """Tells, for the current request, the Visitor that Intake.record needs."""

    def __init__(self, bots: BotFilter, proxies: TrustedProxies, rate_limited: bool):
        self.bots = bots
        self.proxies = proxies
        self.rate_limited = rate_limited

    def register(self, app: Bottle) -> None:
        app.add_hook("before_request", lambda: self.proxies.drop_untrusted_headers(request.environ))

    def current(self) -> Visitor:
        environ = request.environ
        return Visitor(self.bots.reason(environ), self.proxies.client_ip(environ) if self.rate_limited else None)
