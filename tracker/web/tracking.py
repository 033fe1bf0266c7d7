"""The publisher-facing routes, wired to one Intake: single events, batch, pixel, click redirect,
signed links, and the filtered counts.

Everything that records events goes through the same Intake (rate limit, filtering, dedupe,
one Redis round trip) and the same Visitors (client IP behind trusted proxies, bots, prefetch).
"""

from __future__ import annotations

from bottle import Bottle

from ..bots import BotFilter
from ..breaker import Breaker
from ..filtered import FilteredCounts
from ..intake import Intake
from ..ratelimit import RateLimiter
from ..runtime import Runtime
from ..signing import ClickSigner
from .batch import BatchApi
from .filtered import FilteredApi
from .ingest import ROUTES, Ingest
from .instrument import IngestInstrument
from .links import LinkApi
from .pixel import Pixel
from .redirect import Redirect
from .visitors import TrustedProxies, Visitors


#: The tracking routes whose time and refusals /metrics reports, with the kind of event each takes.
TRACKING_ROUTES = {
    **{path: kind.name for kind, paths in ROUTES.items() for path in paths},
    "/v1/events": "batch",
    "/i.gif": "impression",
    "/c": "click",
}


def build_intake(runtime: Runtime) -> Intake:
    settings, client = runtime.settings, runtime.ingest_redis
    limiter = None
    if settings.rate_limit:
        limiter = RateLimiter(client, settings.rate_limit, settings.rate_limit_window_ms, settings.ip_hash_key,
                              settings.namespace)
    return Intake(runtime.ingest_producer, FilteredCounts(client, settings.namespace), settings.tz, limiter,
                  breaker=Breaker(settings.redis_breaker_ms), metrics=runtime.metrics)


def register_tracking(app: Bottle, runtime: Runtime, signer: ClickSigner | None) -> None:
    """Add the tracking routes to `app`; `signer` signs and checks click links (None: /c is off)."""
    settings = runtime.settings
    intake = build_intake(runtime)
    visitors = Visitors(BotFilter(settings.bot_filter), TrustedProxies(settings.trusted_networks),
                        rate_limited=intake.limiter is not None)
    visitors.register(app)
    pixel = Pixel(intake, visitors, settings.retry_after_s)
    Ingest(intake, visitors, settings.max_body_bytes, settings.retry_after_s, pixel).register(app)
    BatchApi(intake, visitors, settings.max_body_bytes, settings.batch_max_events, settings.clock_skew_ms,
             settings.retry_after_s).register(app)
    pixel.register(app)
    Redirect(intake, visitors, signer, settings.retry_after_s).register(app)
    LinkApi(signer, settings.link_api_token, settings.link_base_url, settings.max_body_bytes,
            settings.batch_max_events).register(app)
    FilteredApi(intake.counts, settings.tz, settings.timezone).register(app)
    app.install(IngestInstrument(runtime.metrics, TRACKING_ROUTES))
