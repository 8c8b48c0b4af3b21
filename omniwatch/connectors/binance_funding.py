"""Binance USD-M perpetual funding-rate history (``https://fapi.binance.com``).

``GET /fapi/v1/fundingRate?symbol&startTime&endTime&limit`` returns settled funding events,
ascending, at most 1000 per call: ``[{symbol, fundingTime, fundingRate, markPrice}, ...]`` with
``fundingTime`` in epoch milliseconds and the numbers as strings (``markPrice`` is ``""`` for old
settlements). Funding settles every 8 h at 00/08/16 UTC, but Binance stamps the event a few
milliseconds late (e.g. ``...200005``), so event_time is floored to the second.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from omniwatch.frames import FUNDING_COLUMNS, conform, empty_frame
from omniwatch.symbols import from_venue

from .http import HttpClient, MalformedPayloadError, load_payload, parse_float, parse_utc, utc_timestamp

log = logging.getLogger(__name__)

VENUE = "binance_usdm"
BASE_URL = "https://fapi.binance.com"
MAX_LIMIT = 1000
_FIELDS = ("symbol", "fundingTime", "fundingRate", "markPrice")


def parse_funding(payload: Any, source: str = "live") -> pd.DataFrame:
    """Funding records -> FUNDING_COLUMNS, ascending and de-duplicated on (symbol, event_time).

    The rate is known at settlement, so ``available_time`` = ``event_time``.
    """
    rows = load_payload(payload)
    if not isinstance(rows, list):
        # Binance reports errors as {"code": -1121, "msg": "Invalid symbol."} with HTTP 400,
        # but a 200 with an object is still not funding data.
        raise MalformedPayloadError(f"fundingRate: expected a JSON array, got {str(rows):.80}")
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MalformedPayloadError(f"funding row {i}: expected an object, got {row!r:.80}", row=i)
        missing = [f for f in _FIELDS if f not in row]
        if missing:
            raise MalformedPayloadError(f"funding row {i}: missing field(s) {missing}",
                                        field=missing[0], row=i)
        inst = from_venue(VENUE, str(row["symbol"]))
        records.append({
            "symbol": inst.symbol,
            "venue_symbol": inst.venue_symbol,
            "event_time": parse_utc(row["fundingTime"], field="fundingTime", row=i,
                                    unit="ms").floor("s"),
            "funding_rate": parse_float(row["fundingRate"], field="fundingRate", row=i),
            "mark_price": parse_float(row["markPrice"], field="markPrice", row=i,
                                      allow_missing=True),
        })
    if not records:
        return empty_frame(FUNDING_COLUMNS)
    frame = pd.DataFrame.from_records(records)
    frame = frame.assign(venue=VENUE, available_time=frame["event_time"], source=source)
    frame = frame.drop_duplicates(["venue_symbol", "event_time"]).sort_values(
        ["venue_symbol", "event_time"])
    return conform(frame, FUNDING_COLUMNS)


class BinanceFundingClient(HttpClient):
    """Live client for Binance USD-M funding history (public endpoint, no API key)."""

    def __init__(self, base_url: str = BASE_URL, *, source: str = "live", limit: int = MAX_LIMIT,
                 max_pages: int = 1000, requests_per_second: float | None = 2.0,
                 **http_kwargs: Any) -> None:
        # fundingRate shares a 500 requests / 5 min / IP budget: 2/s keeps far below it in bursts
        # and a full history (a few dozen pages) takes seconds.
        super().__init__(base_url, requests_per_second=requests_per_second, **http_kwargs)
        self.source = source
        self.limit = min(limit, MAX_LIMIT)
        self.max_pages = max_pages

    def fetch_funding(self, venue_symbol: str, start: Any, end: Any) -> pd.DataFrame:
        """Funding events with ``fundingTime`` in ``[start, end)``, paging forward.

        Each next page starts 1 ms after the last ``fundingTime`` seen (the raw, un-floored one),
        so a record is never asked for twice and none is skipped.
        """
        from_venue(VENUE, venue_symbol)  # fail before any request on an unmapped symbol
        start_ms = int(utc_timestamp(start).value // 1_000_000)
        end_ms = int(utc_timestamp(end).value // 1_000_000) - 1  # endTime is inclusive
        frames = []
        cursor = start_ms
        for _ in range(self.max_pages):
            if cursor > end_ms:
                break
            payload, _ = self.get_json("/fapi/v1/fundingRate", {
                "symbol": venue_symbol, "startTime": cursor, "endTime": end_ms,
                "limit": self.limit})
            rows = load_payload(payload)
            frames.append(parse_funding(rows, self.source))
            if len(rows) < self.limit:
                break  # a short page is the last one
            cursor = int(parse_float(rows[-1]["fundingTime"], field="fundingTime",
                                     row=len(rows) - 1)) + 1
        else:
            log.warning("binance funding %s: stopped after %d pages before %s", venue_symbol,
                        self.max_pages, end)
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(FUNDING_COLUMNS)
        frame = frame.drop_duplicates(["venue_symbol", "event_time"]).sort_values("event_time")
        return conform(frame, FUNDING_COLUMNS)
