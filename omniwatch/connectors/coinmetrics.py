"""Coin Metrics community API v4 daily on-chain asset metrics (``community-api.coinmetrics.io``).

``GET /v4/timeseries/asset-metrics?assets&metrics&frequency=1d&start_time&end_time&page_size``
returns ``{"data": [{"asset": "btc", "time": "2024-04-16T00:00:00.000000000Z",
"AdrActCnt": "941086", ...}], "next_page_token": ..., "next_page_url": ...}``: one row per day,
numbers as strings, a metric left out (or null) on days it has no value, and ``next_page_url``
present while more pages remain (to be fetched unmodified). No API key is needed; the community
tier allows about 10 requests per 6 s per IP and its data are CC BY-NC 4.0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

from omniwatch.frames import ONCHAIN_COLUMNS, conform, empty_frame
from omniwatch.symbols import from_venue

from .http import HttpClient, MalformedPayloadError, load_payload, parse_float, parse_utc, utc_timestamp

log = logging.getLogger(__name__)

PROVIDER = "coinmetrics"
BASE_URL = "https://community-api.coinmetrics.io/v4"
ONE_DAY = pd.Timedelta(days=1)


def parse_asset_metrics(payload: Any, metrics: Sequence[str], source: str = "live") -> pd.DataFrame:
    """One page -> ONCHAIN_COLUMNS in long format (one row per asset, metric and day).

    ``event_time`` is the day (UTC midnight); ``available_time`` is the day's end, because a daily
    value covers the whole day and cannot be known before it is over. A metric missing from a row
    (absent, null or "") is skipped, never read as 0.
    """
    body = load_payload(payload)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise MalformedPayloadError(f"asset-metrics: expected an object with a 'data' array, "
                                    f"got {str(body):.80}", field="data")
    records = []
    for i, row in enumerate(body["data"]):
        if not isinstance(row, dict):
            raise MalformedPayloadError(f"asset-metrics row {i}: expected an object", row=i)
        for key in ("asset", "time"):
            if not row.get(key):
                raise MalformedPayloadError(f"asset-metrics row {i}: missing field {key!r}",
                                            field=key, row=i)
        symbol = from_venue(PROVIDER, str(row["asset"])).symbol
        day = parse_utc(row["time"], field="time", row=i).floor("D")
        for metric in metrics:
            value = row.get(metric)
            if value is None or value == "":
                continue
            records.append({"symbol": symbol, "metric": metric, "event_time": day,
                            "value": parse_float(value, field=metric, row=i)})
    if not records:
        return empty_frame(ONCHAIN_COLUMNS)
    frame = pd.DataFrame.from_records(records)
    frame = frame.assign(provider=PROVIDER, available_time=frame["event_time"] + ONE_DAY,
                         source=source)
    return conform(frame, ONCHAIN_COLUMNS)


class CoinMetricsClient(HttpClient):
    """Live client for the Coin Metrics community API (no API key)."""

    def __init__(self, base_url: str = BASE_URL, *, source: str = "live", page_size: int = 1000,
                 max_pages: int = 200, requests_per_second: float | None = 1.5,
                 **http_kwargs: Any) -> None:
        # 10 requests per 6 s per IP is the published community limit; 1.5/s stays below it.
        super().__init__(base_url, requests_per_second=requests_per_second, **http_kwargs)
        self.source = source
        self.page_size = page_size
        self.max_pages = max_pages

    def fetch_asset_metrics(self, asset: str, metrics: Sequence[str], start: Any, end: Any
                            ) -> pd.DataFrame:
        """Daily ``metrics`` of ``asset`` for days in ``[start, end)``, following next_page_url."""
        if isinstance(metrics, str):
            metrics = [metrics]
        from_venue(PROVIDER, asset)  # fail before any request on an unmapped asset
        start, end = utc_timestamp(start), utc_timestamp(end)
        params: dict[str, Any] | None = {
            "assets": asset, "metrics": ",".join(metrics), "frequency": "1d",
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end_inclusive": "false", "paging_from": "start", "page_size": self.page_size}
        url = "/timeseries/asset-metrics"
        frames = []
        for _ in range(self.max_pages):
            payload, _ = self.get_json(url, params)
            frames.append(parse_asset_metrics(payload, metrics, self.source))
            next_url = payload.get("next_page_url") if isinstance(payload, dict) else None
            if not next_url:
                break
            url, params = next_url, None  # the API asks for next_page_url to be used unmodified
        else:
            log.warning("coinmetrics %s: stopped after %d pages before %s", asset,
                        self.max_pages, end)
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(ONCHAIN_COLUMNS)
        frame = frame[(frame["event_time"] >= start) & (frame["event_time"] < end)]
        frame = frame.drop_duplicates(["symbol", "metric", "event_time"]).sort_values(
            ["metric", "event_time"])
        return conform(frame, ONCHAIN_COLUMNS)
