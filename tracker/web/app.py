"""The WSGI application: `create_app(runtime)` wires the routes to a process's connections."""

from __future__ import annotations

import logging

import bottle
from bottle import Bottle, request, response

from ..reports import Reports
from ..runtime import Runtime
from .pages import Pages
from .responses import JSON_HEADERS, dumps
from .stats import StatsApi
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
    register_tracking(app, runtime)  # ingest, batch, pixel, click redirect, links, filtered counts
    StatsApi(Reports(runtime.database), settings.tz, settings.timezone).register(app)
    Pages(settings.tz).register(app)
    return app
