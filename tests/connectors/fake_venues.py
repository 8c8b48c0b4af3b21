"""A loopback HTTP server that answers like Coinbase, Binance USD-M and Coin Metrics would.

It serves the recorded payloads in ``tests/fixtures/api_samples`` and applies the query
parameters the way the real APIs do (time filters, page sizes, cursors), so the connectors'
paging logic is exercised over real HTTP. Every request is recorded (path, params, arrival
time); tests can queue faults per path (an error status, a raw body, a delay) that are served
before the normal answer.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pandas as pd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "api_samples"
CANDLES_FILE = FIXTURES / "coinbase_exchange" / "products_BTC-USD_candles_granularity3600.json"
TRADES_FILE = FIXTURES / "coinbase_exchange" / "products_BTC-EUR_trades.json"
BOOK_FILE = FIXTURES / "coinbase_exchange" / "products_BTC-USD_book_level2.json"
FUNDING_FILE = FIXTURES / "binance_futures" / "fapi_v1_fundingRate_BTCUSDT_limit10.json"
METRICS_FILE = FIXTURES / "coinmetrics" / "timeseries_asset-metrics_btc_1d_2010-07_2024-04.json"


def load(path: Path):
    return json.loads(path.read_text())


@dataclass
class SeenRequest:
    path: str
    params: dict[str, str]
    at: float  # time.monotonic() when the request arrived


@dataclass
class Fault:
    status: int | None = None      # answer with this status instead of the normal payload
    body: bytes | None = None      # raw body (with status, or alone as a 200)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0           # sleep before answering (a slow server)


def _epoch(value: str) -> float:
    return pd.Timestamp(value).timestamp()


def _json(status: int, obj, headers: dict[str, str] | None = None):
    return status, headers or {}, json.dumps(obj).encode()


class FakeVenueServer:
    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
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

    def start(self) -> "FakeVenueServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def inject(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self._faults[path].extend(faults)

    def seen(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- request handling --------------------------------------------------------------------
    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                with server._lock:
                    server.requests.append(SeenRequest(parts.path, params, time.monotonic()))
                    queue = server._faults.get(parts.path)
                    fault = queue.popleft() if queue else None
                if fault and fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault and (fault.status is not None or fault.body is not None):
                    status = fault.status or 200
                    body = fault.body if fault.body is not None else json.dumps(
                        {"message": f"injected {status}"}).encode()
                    headers = fault.headers
                else:
                    status, headers, body = server.route(parts.path, params)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test); nothing to answer

            def log_message(self, *args) -> None:
                pass

        return Handler

    def route(self, path: str, q: dict[str, str]):
        if path == "/products/BTC-USD/candles":
            return self._candles(q)
        if path == "/products/BTC-EUR/trades":
            return self._trades(q)
        if path == "/products/BTC-USD/book":
            if q.get("level") != "2":
                return _json(400, {"message": "this fake serves level=2 only"})
            return _json(200, load(BOOK_FILE))
        if path == "/fapi/v1/fundingRate":
            return self._funding(q)
        if path == "/v4/timeseries/asset-metrics":
            return self._asset_metrics(q)
        return _json(404, {"message": "NotFound"})

    def _candles(self, q: dict[str, str]):
        granularity = int(q.get("granularity", "60"))
        if granularity != 3600:
            return _json(400, {"message": "only granularity=3600 is recorded"})
        start, end = _epoch(q["start"]), _epoch(q["end"])
        if (end - start) / granularity > 300:  # the real API's own limit
            return _json(400, {"message": "granularity too small for the requested time range"})
        # Coinbase answers candles whose open is in [start, end], both ends included, newest first.
        rows = [r for r in load(CANDLES_FILE) if start <= r[0] <= end]
        return _json(200, sorted(rows, key=lambda r: -r[0]))

    def _trades(self, q: dict[str, str]):
        limit = min(int(q.get("limit", "100")), 1000)
        rows = sorted(load(TRADES_FILE), key=lambda r: -r["trade_id"])
        if "after" in q:  # older than the cursor
            rows = [r for r in rows if r["trade_id"] < int(q["after"])]
        page = rows[:limit]
        headers = {}
        if page:
            headers = {"CB-BEFORE": str(page[0]["trade_id"]), "CB-AFTER": str(page[-1]["trade_id"])}
        return _json(200, page, headers)

    def _funding(self, q: dict[str, str]):
        if q.get("symbol") != "BTCUSDT":
            return _json(400, {"code": -1121, "msg": "Invalid symbol."})
        limit = min(int(q.get("limit", "100")), 1000)
        lo = int(q.get("startTime", "0"))
        hi = int(q.get("endTime", str(2**62)))
        rows = [r for r in load(FUNDING_FILE) if lo <= r["fundingTime"] <= hi]
        return _json(200, sorted(rows, key=lambda r: r["fundingTime"])[:limit])

    def _asset_metrics(self, q: dict[str, str]):
        if q.get("frequency", "1d") != "1d":
            return _json(400, {"error": {"type": "bad_parameter", "message": "1d only"}})
        assets = q["assets"].split(",")
        metrics = q["metrics"].split(",")
        lo = _epoch(q["start_time"]) if "start_time" in q else float("-inf")
        hi = _epoch(q["end_time"]) if "end_time" in q else float("inf")
        end_inclusive = q.get("end_inclusive", "true") == "true"
        rows = []
        for row in load(METRICS_FILE)["data"]:
            t = _epoch(row["time"])
            if row["asset"] in assets and lo <= t and (t <= hi if end_inclusive else t < hi):
                values = {m: row[m] for m in metrics if m in row}
                if values:
                    rows.append({"asset": row["asset"], "time": row["time"], **values})
        page_size = int(q.get("page_size", "100"))
        offset = int(base64.b64decode(q["next_page_token"])) if "next_page_token" in q else 0
        body: dict = {"data": rows[offset:offset + page_size]}
        if offset + page_size < len(rows):
            token = base64.b64encode(str(offset + page_size).encode()).decode()
            rest = {k: v for k, v in q.items() if k != "next_page_token"}
            body["next_page_token"] = token
            body["next_page_url"] = (f"{self.url}/v4/timeseries/asset-metrics?"
                                     f"{urlencode({**rest, 'next_page_token': token})}")
        return _json(200, body)
