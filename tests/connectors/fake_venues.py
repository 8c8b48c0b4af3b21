"""The venue fake: a ``LoopbackServer`` that answers like Coinbase, Binance USD-M and Coin Metrics.

It serves the recorded payloads in ``tests/fixtures/api_samples`` and applies the query
parameters the way the real APIs do (time filters, page sizes, cursors), so the connectors'
paging logic is exercised over real HTTP. The request log and per-path faults (``Fault``: an
error status, a raw body, headers, a delay) come from ``loopback``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd

from .loopback import LoopbackServer, json_reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "api_samples"
CANDLES_FILE = FIXTURES / "coinbase_exchange" / "products_BTC-USD_candles_granularity3600.json"
TRADES_FILE = FIXTURES / "coinbase_exchange" / "products_BTC-EUR_trades.json"
BOOK_FILE = FIXTURES / "coinbase_exchange" / "products_BTC-USD_book_level2.json"
FUNDING_FILE = FIXTURES / "binance_futures" / "fapi_v1_fundingRate_BTCUSDT_limit10.json"
METRICS_FILE = FIXTURES / "coinmetrics" / "timeseries_asset-metrics_btc_1d_2010-07_2024-04.json"


def load(path: Path):
    return json.loads(path.read_text())


def _epoch(value: str) -> float:
    return pd.Timestamp(value).timestamp()


class FakeVenueServer(LoopbackServer):
    not_found = json_reply(404, {"message": "NotFound"})

    def route(self, path: str, q: dict[str, str]):
        if path == "/products/BTC-USD/candles":
            return self._candles(q)
        if path == "/products/BTC-EUR/trades":
            return self._trades(q)
        if path == "/products/BTC-USD/book":
            if q.get("level") != "2":
                return json_reply(400, {"message": "this fake serves level=2 only"})
            return json_reply(200, load(BOOK_FILE))
        if path == "/fapi/v1/fundingRate":
            return self._funding(q)
        if path == "/v4/timeseries/asset-metrics":
            return self._asset_metrics(q)
        return None

    def _candles(self, q: dict[str, str]):
        granularity = int(q.get("granularity", "60"))
        if granularity != 3600:
            return json_reply(400, {"message": "only granularity=3600 is recorded"})
        start, end = _epoch(q["start"]), _epoch(q["end"])
        if (end - start) / granularity > 300:  # the real API's own limit
            return json_reply(400, {"message":
                                    "granularity too small for the requested time range"})
        # Coinbase answers candles whose open is in [start, end], both ends included, newest first.
        rows = [r for r in load(CANDLES_FILE) if start <= r[0] <= end]
        return json_reply(200, sorted(rows, key=lambda r: -r[0]))

    def _trades(self, q: dict[str, str]):
        limit = min(int(q.get("limit", "100")), 1000)
        rows = sorted(load(TRADES_FILE), key=lambda r: -r["trade_id"])
        if "after" in q:  # older than the cursor
            rows = [r for r in rows if r["trade_id"] < int(q["after"])]
        page = rows[:limit]
        headers = {}
        if page:
            headers = {"CB-BEFORE": str(page[0]["trade_id"]), "CB-AFTER": str(page[-1]["trade_id"])}
        return json_reply(200, page, headers)

    def _funding(self, q: dict[str, str]):
        if q.get("symbol") != "BTCUSDT":
            return json_reply(400, {"code": -1121, "msg": "Invalid symbol."})
        limit = min(int(q.get("limit", "100")), 1000)
        lo = int(q.get("startTime", "0"))
        hi = int(q.get("endTime", str(2**62)))
        rows = [r for r in load(FUNDING_FILE) if lo <= r["fundingTime"] <= hi]
        return json_reply(200, sorted(rows, key=lambda r: r["fundingTime"])[:limit])

    def _asset_metrics(self, q: dict[str, str]):
        if q.get("frequency", "1d") != "1d":
            return json_reply(400, {"error": {"type": "bad_parameter", "message": "1d only"}})
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
        return json_reply(200, body)
