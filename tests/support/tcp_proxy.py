"""A TCP proxy in threads of its own (any test's event loop, or none, may use it) that can go silent:
:meth:`TcpProxy.freeze` makes every connection through it, open or new, a black hole — bytes are
taken and never passed on, nothing is closed — as a server that froze or a network that partitioned
looks to a client; :meth:`TcpProxy.thaw` lets new connections through again (the frozen ones stay
silent). :attr:`TcpProxy.swallowed` is set once bytes sent after a freeze were taken: a client's
request is in the silence now (a test cancels it then, not before it was sent)."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._frozen = threading.Event()
        self.swallowed = threading.Event()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy-accept").start()

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()
        self.swallowed.clear()

    def _keep(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(socks)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._keep(client)
            if self._frozen.is_set():
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            self._keep(server)
            frozen_here = self._frozen
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b, frozen_here), daemon=True).start()

    def _swallow(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass

    def _pipe(self, src: socket.socket, dst: socket.socket, frozen: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if frozen.is_set() or self._stopped.is_set():
                    self.swallowed.set()
                    self._swallow(src)  # silent from now on: taken, never passed on, never closed
                    return
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()
