"""A loopback HTTP server for the events connectors (GDELT, RSS, SEC EDGAR).

Routes are registered per test (``serve(path, body, ...)``) from the recorded real payloads in
``tests/fixtures/events``; anything unregistered answers 404, as GDELT does for a missing slot.
Every request is recorded with its headers and arrival time (``time.monotonic()``), so tests can
assert what the client actually sent (SEC's User-Agent) and how fast (SEC's rate limit). A route
can sleep before answering, to play a feed that outlives the client timeout.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
GDELT_FILE = FIXTURES / "gdelt" / "20191024143000.export.trimmed.CSV"
COINDESK_FILE = FIXTURES / "rss" / "coindesk_rss_2026-09-30_trimmed.xml"
COINTELEGRAPH_FILE = FIXTURES / "rss" / "cointelegraph_rss_2026-09-30_trimmed.xml"
TESLA_FILE = FIXTURES / "sec_edgar" / "submissions_CIK0001318605_tesla_trimmed25.json"
FEMASYS_FILE = FIXTURES / "sec_edgar" / "submissions_CIK0001339005_femasys_2025-08-02.json"
PRIMARY_DOCS = FIXTURES / "primary_doc"


def zipped(name: str, content: bytes) -> bytes:
    """``content`` as the single member ``name`` of a zip archive (GDELT's packaging)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived


@dataclass
class Route:
    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    delay_s: float = 0.0


class FakeEventsServer:
    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeEventsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream", *,
              status: int = 200, delay_s: float = 0.0) -> str:
        """Answer GET ``path`` with ``body``; returns the absolute URL."""
        with self._lock:
            self._routes[path] = Route(body, content_type, status, delay_s)
        return self.url + path

    def seen(self, path: str | None = None) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                path = urlsplit(self.path).path
                with server._lock:
                    server.requests.append(SeenRequest(path, dict(self.headers.items()),
                                                       time.monotonic()))
                    route = server._routes.get(path) or Route(b"Not Found", "text/plain", 404)
                if route.delay_s:
                    time.sleep(route.delay_s)
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture
def events_server():
    """A fresh loopback events server per test (import this fixture into a test module)."""
    server = FakeEventsServer().start()
    try:
        yield server
    finally:
        server.stop()
