"""A TCP proxy that a drill can cut: every open connection is reset and new ones are refused
until it is restored on the same port. Clients see what a dead server (or a partition) shows
them, connection refused or reset, while the server behind it keeps its state, like a server
restarted on a durable store. It lets a drill cut a dependency whose restart is slow (MLflow's
server takes seconds to start) many times for the price of one start."""

from __future__ import annotations

import socket
import struct
import threading


class CuttableProxy:
    def __init__(self, upstream_port: int, port: int = 0, host: str = "127.0.0.1", upstream_host: str = "127.0.0.1"):
        self.host, self.upstream_host, self.upstream_port = host, upstream_host, upstream_port
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = port
        self.restore()

    def restore(self) -> None:
        """Listen again (on the same port once it has one)."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(64)
            self.port = listener.getsockname()[1]
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="chaos-proxy").start()

    def cut(self) -> int:
        """Stop listening and reset every open connection; returns how many were reset."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            _close(listener)
        for conn in conns:
            # SO_LINGER 0: close sends RST, as a killed process's sockets do.
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            _close(conn)
        return len(conns)

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection((self.upstream_host, self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(source)
                self._conns.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
