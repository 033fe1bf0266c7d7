"""Serving the WSGI app with waitress: one process, or several sharing the port.

Several processes each bind their own socket to the same address with SO_REUSEPORT, so the
kernel spreads connections across them; a supervisor (the parent) restarts a child that dies
and stops all of them on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

import waitress

from .config import Settings

log = logging.getLogger(__name__)

#: Seconds an idle keep-alive connection stays open.
CHANNEL_TIMEOUT_S = 30
#: Open connections one process accepts before refusing more.
CONNECTION_LIMIT = 1_000
#: waitress refuses a body this many times TRACKER_MAX_BODY_BYTES before reading it, with a
#: plain-text 413; below that the app answers its own JSON 413 (with CORS headers, which a
#: browser needs to read it). With waitress's limit equal to the app's, no client ever saw the
#: JSON answer.
SERVER_BODY_LIMIT_FACTOR = 4


#: Pending connections the kernel queues per listening socket.
LISTEN_BACKLOG = 1024
#: Seconds the supervisor waits before restarting a web process that died.
RESTART_DELAY_S = 1.0
#: Seconds children get to finish their requests on shutdown before they are killed.
STOP_TIMEOUT_S = 10


def reuseport_socket(host: str, port: int, listen: bool = True) -> socket.socket:
    """A socket bound to (host, port) that other processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(LISTEN_BACKLOG)
    return sock


def create_server(app, settings: Settings, port: int | None = None, sock: socket.socket | None = None):
    """A waitress server for `app`, bounded in body size, connections and idle time."""
    # Waitress warns "Task queue depth is N" on every request queued while its threads are busy:
    # under load that is a log line (and its formatting) per request, so only errors get out.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    where = {"sockets": [sock]} if sock is not None else {
        "host": settings.host, "port": settings.port if port is None else port}
    return waitress.create_server(
        app,
        **where,
        threads=settings.web_threads,
        max_request_body_size=settings.max_body_bytes * SERVER_BODY_LIMIT_FACTOR,
        channel_timeout=CHANNEL_TIMEOUT_S,
        connection_limit=CONNECTION_LIMIT,
        # The app decides which peers' X-Forwarded-For to believe (TRACKER_TRUSTED_PROXIES, CIDRs, which
        # waitress cannot express) and drops those headers from any other peer: tracker/web/visitors.py.
        clear_untrusted_proxy_headers=False,
        ident="tracker",
    )


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM stops the process the way Ctrl-C does (KeyboardInterrupt)."""

    def interrupt(signum, frame):
        # Once: a second SIGTERM (a process group signalled, then its supervisor stopping its
        # children) must not interrupt the shutdown the first one started.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # nor a second Ctrl-C, while closing
            server.close()
            signal.signal(signal.SIGINT, previous)


def serve_processes(make_app: Callable[[], object], settings: Settings, processes: int) -> None:
    """Serve with `processes` web processes on settings.host:settings.port until stopped.

    The parent binds first (so a busy port fails here, at once) without listening, so that the
    kernel hands connections to the children only; then it supervises them. Each child builds
    its own app, hence its own connections, after the fork.
    """
    reuseport_socket(settings.host, settings.port, listen=False).close()
    children: dict[int, int] = {}  # pid -> slot
    for slot in range(processes):
        children[_spawn(make_app, settings, slot)] = slot
    log.info("serving http://%s:%s with %d processes", settings.host, settings.port, processes)
    try:
        with sigterm_as_interrupt():
            _supervise(make_app, settings, children)
    except KeyboardInterrupt:
        log.info("stopping %d web processes", len(children))
    finally:
        _stop_children(children)


def _spawn(make_app, settings: Settings, slot: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:  # the child: its own socket, app and connections; never returns into the parent's code
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler; serve_forever sets its own
        sock = reuseport_socket(settings.host, settings.port)
        serve_forever(create_server(make_app(), settings, sock=sock))
    except BaseException:
        log.exception("web process %d failed", slot)
        code = 1
    finally:
        os._exit(code)


def _supervise(make_app, settings: Settings, children: dict[int, int]) -> None:
    while True:
        pid, status = os.wait()
        slot = children.pop(pid, None)
        if slot is None:
            continue
        log.error("web process %d (pid %d) exited with code %d; restarting it", slot, pid,
                  os.waitstatus_to_exitcode(status))
        time.sleep(RESTART_DELAY_S)
        children[_spawn(make_app, settings, slot)] = slot


def _stop_children(children: dict[int, int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for pid in list(children):
        while time.monotonic() < deadline and not _reaped(pid):
            time.sleep(0.05)
        if not _reaped(pid):
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def _reaped(pid: int) -> bool:
    """True once child `pid` has exited and been collected."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:  # already collected
        return True
