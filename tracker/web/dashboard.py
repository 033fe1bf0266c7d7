"""The Dramatiq dashboard at /admin/dramatiq/: queued, retrying and dead-lettered messages.

`dramatiq-dashboard` is a WSGI app of its own, mounted into the Bottle app. It lists only the
queues its broker has declared, so the web process declares the actors' queue on a broker of its
own, built from the same settings as the workers' (`dramatiq tracker.tasks`) rather than
importing tracker.tasks, whose import declares the process-wide broker and the tick. It reads
the broker's Redis keys (`<namespace>:<queue>`, `.DQ` delayed, `.XQ` dead-lettered) and
requeues a dead message by enqueuing a copy with its retries reset.

Its pages and forms sit under /admin, so protect_admin() guards them; its forms carry their own
CSRF token (a cookie and a hidden field).
"""

from __future__ import annotations

import logging

from bottle import Bottle, redirect
from dramatiq.brokers.redis import RedisBroker
from dramatiq_dashboard import DashboardApp

from ..broker import build_broker
from ..config import Settings
from .admin import ADMIN_PREFIX

log = logging.getLogger(__name__)

DASHBOARD_PREFIX = f"{ADMIN_PREFIX}/dramatiq"


def mount_dashboard(app: Bottle, settings: Settings) -> bool:
    """Serve the dashboard of the settings' broker at /admin/dramatiq/; False if it cannot be."""
    broker = build_broker(settings)
    if not isinstance(broker, RedisBroker):
        log.info("the Dramatiq dashboard needs a Redis broker; TRACKER_BROKER_URL is not one")
        return False
    broker.declare_queue(settings.queue_name)
    app.mount(f"{DASHBOARD_PREFIX}/", DashboardApp(broker=broker, prefix=DASHBOARD_PREFIX))
    app.route(DASHBOARD_PREFIX, "GET", lambda: redirect(f"{DASHBOARD_PREFIX}/"))
    return True
