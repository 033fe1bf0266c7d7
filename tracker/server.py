"""Serving the WSGI app with waitress, and stopping cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal

import waitress

from .config import Settings

log = logging.getLogger(__name__)

#: Seconds an idle keep-alive connection stays open.
CHANNEL_TIMEOUT_S = 30
#: Open connections one process accepts before refusing more.
CONNECTION_LIMIT = 1_000


def create_server(app, settings: Settings, port: int | None = None):
    """A waitress server for `app`, bounded in body size, connections and idle time."""
    return waitress.create_server(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        threads=settings.web_threads,
        max_request_body_size=settings.max_body_bytes,
        channel_timeout=CHANNEL_TIMEOUT_S,
        connection_limit=CONNECTION_LIMIT,
        clear_untrusted_proxy_headers=True,
        ident="tracker",
    )


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM stops the process the way Ctrl-C does (KeyboardInterrupt)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_forever(server) -> None:
    """Run `server` until Ctrl-C or SIGTERM, then close its sockets."""
    log.info("listening on http://%s:%s", server.effective_host, server.effective_port)
    with sigterm_as_interrupt():
        try:
            server.run()
        except KeyboardInterrupt:
            log.info("stopping the web server")
        finally:
            server.close()
