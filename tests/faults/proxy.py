"""A TCP proxy to Redis that can lose one reply: the command runs, its answer never arrives.

That is what a client sees when Redis stalls past its timeout (a slow fsync, a pause, a network
hiccup) and then runs what it had received: the web server answers 503, yet the event is stored.
"""

from __future__ import annotations

import socket
import threading

from tests.processes import free_port

CHUNK = 65536


class ReplyDropper:
    """Forwards 127.0.0.1:`port` to the Redis on `target_port`; `arm(marker)` loses one reply.

    Once armed, the first chunk a client sends that contains `marker` is forwarded to Redis, and
    everything Redis answers on that connection from then on is dropped.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self._markers: tuple[bytes, ...] = ()
        self._lock = threading.Lock()
        self.dropped = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, *markers: bytes) -> None:
        with self._lock:
            self._markers = markers

    def _take_marker(self, chunk: bytes) -> bool:
        with self._lock:
            if self._markers and any(m in chunk for m in self._markers):
                self._markers = ()
                self.dropped += 1
                return True
        return False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            muted = threading.Event()
            threading.Thread(target=self._upstream, args=(client, server, muted), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client, muted), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket, muted: threading.Event) -> None:
        try:
            while chunk := client.recv(CHUNK):
                if self._take_marker(chunk):
                    muted.set()
                server.sendall(chunk)
        except OSError:
            pass
        _close(client, server)

    def _downstream(self, server: socket.socket, client: socket.socket, muted: threading.Event) -> None:
        try:
            while chunk := server.recv(CHUNK):
                if not muted.is_set():
                    client.sendall(chunk)
        except OSError:
            pass
        _close(client, server)

    def close(self) -> None:
        self._closed = True
        self.listener.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass
