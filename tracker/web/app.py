"""The WSGI application: `create_app(runtime)` wires the routes to a process's connections."""

from __future__ import annotations

import logging

import bottle
from bottle import Bottle, request, response

from ..reports import Reports
from ..runtime import Runtime
from ..signing import click_signer
from .admin import protect_admin
from .bulkhead import Bulkhead
from .dashboard import mount_dashboard
from .monitoring import Monitoring
from .pages import Pages
from .responses import JSON_HEADERS, dumps
from .stats import StatsApi
from .stats_page import StatsPage
from .tracking import register_tracking

log = logging.getLogger(__name__)

ERROR_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    500: "Internal server error",
}


def json_error_handler(error: bottle.HTTPError) -> str:
    """Bottle's own errors (404, 405, uncaught exceptions) as JSON with CORS headers, not HTML."""
    status = error.status_code
    if status >= 500:
        log.error("unhandled error on %s %s: %s", request.method, request.path, error.exception,
                  exc_info=error.exception)
    for name, value in JSON_HEADERS.items():
        response.set_header(name, value)
    return dumps({"error": ERROR_MESSAGES.get(status, error.status_line)})


def create_app(runtime: Runtime) -> Bottle:
    """A Bottle app serving ingest, stats and pages from `runtime`'s connections."""
    settings = runtime.settings
    app = Bottle(catchall=True)
    app.config["json.enable"] = False  # answers are serialised by responses.py, with CORS headers
    app.default_error_handler = json_error_handler
    signer = click_signer(settings.click_secret)
    register_tracking(app, runtime, signer)  # ingest, batch, pixel, click redirect, links, filtered counts
    stats = StatsApi(Reports(runtime.database), settings.tz, settings.timezone)
    stats.register(app)
    StatsPage(stats).register(app)
    app.install(Bulkhead.for_stats(settings.web_threads))
    Pages(signer, settings.link_base_url).register(app)
    if protect_admin(app, settings):
        mount_dashboard(app, settings)
    Monitoring.of(runtime).register(app)
    return app
