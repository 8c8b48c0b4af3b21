"""A loopback HTTP test server: routing, a request log and fault injection, shared by the fakes.

``LoopbackServer`` listens on 127.0.0.1 (a free port) in a daemon thread and answers GET:

* Every request is recorded as a ``SeenRequest`` (path, query params, headers, arrival time
  from ``time.monotonic()``), so tests can assert what the client sent and how fast.
* Faults queued per path with ``inject(path, Fault(...), ...)`` are served first, one per
  request: an error status (429 with ``Retry-After``, 5xx...), a raw body, extra headers, and/or
  a delay before answering (a server slower than the client timeout).
* Fixed answers are registered with ``serve(path, body, content_type, status=, delay_s=)``.
* Otherwise ``route(path, params)`` answers; subclasses override it to play an API (filters,
  paging, cursors). What nothing answers gets ``not_found``.

Use it as a context manager (``with FakeVenueServer() as server: ...``) or ``start()``/``stop()``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

JSON = "application/json"


@dataclass
class SeenRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering


def json_reply(status: int, obj, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(obj).encode(), JSON, headers or {})


@dataclass
class Fault:
    """One answer served before the normal one (queued per path, used once)."""
    status: int | None = None      # answer with this status instead of the normal payload
    body: bytes | None = None      # raw body (with status, or alone as a 200)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0           # sleep before answering (a slow server)
    content_type: str = JSON

    def reply(self) -> Reply | None:
        """The answer this fault replaces the normal one with; None for a delay alone."""
        if self.status is None and self.body is None:
            return None
        status = self.status or 200
        body = self.body if self.body is not None else json.dumps(
            {"message": f"injected {status}"}).encode()
        return Reply(status, body, self.content_type, self.headers)


class LoopbackServer:
    not_found = Reply(404, b"Not Found", "text/plain")

    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._routes: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval so shutdown() (called after every test) returns quickly.
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream", *,
              status: int = 200, delay_s: float = 0.0) -> str:
        """Answer every GET ``path`` with ``body``; returns the absolute URL."""
        with self._lock:
            self._routes[path] = Reply(status, body, content_type, delay_s=delay_s)
        return self.url + path

    def inject(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self._faults[path].extend(faults)

    def seen(self, path: str | None = None) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def route(self, path: str, params: dict[str, str]) -> Reply | None:
        """The answer for a path nothing registered; None means ``not_found``."""
        return None

    # -- request handling --------------------------------------------------------------------
    def _answer(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(SeenRequest(path, params, headers, time.monotonic()))
            queue = self._faults.get(path)
            fault = queue.popleft() if queue else None
            fixed = self._routes.get(path)
        if fault and fault.delay_s:
            time.sleep(fault.delay_s)
        reply = (fault and fault.reply()) or fixed or self.route(path, params) or self.not_found
        if reply.delay_s:
            time.sleep(reply.delay_s)
        return reply

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                reply = server._answer(parts.path, params, dict(self.headers.items()))
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test); nothing to answer

            def log_message(self, *args) -> None:
                pass

        return Handler
