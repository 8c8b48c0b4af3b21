"""Coinbase Exchange public REST (``https://api.exchange.coinbase.com``): candles, trades, L2 book.

Wire formats (public, unauthenticated endpoints):

* ``GET /products/{id}/candles?granularity&start&end`` -> ``[[time, low, high, open, close,
  volume], ...]`` newest first, ``time`` = bar open in epoch seconds, at most 300 rows per call.
* ``GET /products/{id}/trades?limit&after`` -> ``[{time, trade_id, price, size, side}, ...]``
  newest first; the ``CB-AFTER`` response header is the cursor for the next (older) page.
* ``GET /products/{id}/book?level=2`` -> ``{sequence, bids: [[price, size, num_orders]], asks,
  time?}`` with 50 aggregated levels per side, best first.

The module-level ``parse_*`` functions are pure (payload in, canonical frame out) so a replay
source can feed them recorded files.
"""

from __future__ import annotations

import email.utils
import logging
from typing import Any

import pandas as pd

from omniwatch.frames import MARKET_BAR_COLUMNS, ORDERBOOK_COLUMNS, TRADE_COLUMNS, conform, empty_frame
from omniwatch.symbols import from_venue

from .http import HttpClient, MalformedPayloadError, load_payload, parse_float, parse_utc, utc_timestamp

log = logging.getLogger(__name__)

VENUE = "coinbase"
BASE_URL = "https://api.exchange.coinbase.com"
MAX_CANDLES_PER_REQUEST = 300
# Granularities the candles endpoint accepts, with our interval labels.
INTERVALS = {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 21600: "6h", 86400: "1d"}
_CANDLE_FIELDS = ("time", "low", "high", "open", "close", "volume")
_TRADE_FIELDS = ("time", "trade_id", "price", "size", "side")


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_candles(payload: Any, product_id: str, source: str = "live", *,
                  granularity: int = 3600) -> pd.DataFrame:
    """Candle rows -> MARKET_BAR_COLUMNS, ascending and de-duplicated on the bar open.

    ``event_time`` is the bar open, ``available_time`` the bar close (open + granularity).
    """
    if granularity not in INTERVALS:
        raise ValueError(f"unsupported Coinbase granularity {granularity}; use one of {list(INTERVALS)}")
    rows = load_payload(payload)
    if not isinstance(rows, list):
        raise MalformedPayloadError(f"candles: expected a JSON array, got {type(rows).__name__}")
    inst = from_venue(VENUE, product_id)
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != len(_CANDLE_FIELDS):
            raise MalformedPayloadError(
                f"candle row {i}: expected 6 fields [time, low, high, open, close, volume], "
                f"got {row!r:.80}", row=i)
        values = {f: parse_float(v, field=f, row=i) for f, v in zip(_CANDLE_FIELDS, row, strict=True)}
        records.append(values)
    if not records:
        return empty_frame(MARKET_BAR_COLUMNS)
    frame = pd.DataFrame.from_records(records)
    frame["event_time"] = pd.to_datetime(frame["time"].astype("int64"), unit="s", utc=True)
    frame["available_time"] = frame["event_time"] + pd.Timedelta(seconds=granularity)
    frame = frame.assign(symbol=inst.symbol, venue=VENUE, venue_symbol=product_id,
                         quote=inst.quote, interval=INTERVALS[granularity], source=source)
    frame = frame.drop_duplicates("event_time").sort_values("event_time")
    return conform(frame, MARKET_BAR_COLUMNS)


def parse_trades(payload: Any, product_id: str, source: str = "live") -> pd.DataFrame:
    """Trade objects -> TRADE_COLUMNS, ascending by time then trade id, de-duplicated on trade id.

    ``side`` is kept as Coinbase sends it: the side of the resting (maker) order.
    """
    rows = load_payload(payload)
    if not isinstance(rows, list):
        raise MalformedPayloadError(f"trades: expected a JSON array, got {type(rows).__name__}")
    inst = from_venue(VENUE, product_id)
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MalformedPayloadError(f"trade row {i}: expected an object, got {row!r:.80}", row=i)
        missing = [f for f in _TRADE_FIELDS if row.get(f) in (None, "")]
        if missing:
            raise MalformedPayloadError(f"trade row {i}: missing field(s) {missing}",
                                        field=missing[0], row=i)
        records.append({
            "trade_id": str(row["trade_id"]),
            "event_time": parse_utc(row["time"], field="time", row=i),
            "price": parse_float(row["price"], field="price", row=i),
            "size": parse_float(row["size"], field="size", row=i),
            "side": str(row["side"]),
        })
    if not records:
        return empty_frame(TRADE_COLUMNS)
    frame = pd.DataFrame.from_records(records)
    frame["available_time"] = frame["event_time"]
    frame = frame.assign(symbol=inst.symbol, venue=VENUE, venue_symbol=product_id,
                         quote=inst.quote, source=source)
    return _tidy_trades(frame)


def parse_book(payload: Any, product_id: str, snapshot_time: Any,
               source: str = "live") -> pd.DataFrame:
    """A level-2 book -> ORDERBOOK_COLUMNS, one row per side and level (level 0 = best price).

    The book endpoint has no per-level times: every row carries ``snapshot_time`` as both
    event and available time.
    """
    book = load_payload(payload)
    if not isinstance(book, dict):
        raise MalformedPayloadError(f"book: expected a JSON object, got {type(book).__name__}")
    for key in ("sequence", "bids", "asks"):
        if key not in book:
            raise MalformedPayloadError(f"book: missing field {key!r}", field=key)
    sequence = int(parse_float(book["sequence"], field="sequence"))
    inst = from_venue(VENUE, product_id)
    snapshot = utc_timestamp(snapshot_time)
    records = []
    for side_key, side in (("bids", "bid"), ("asks", "ask")):
        levels = book[side_key]
        if not isinstance(levels, list):
            raise MalformedPayloadError(f"book {side_key}: expected an array", field=side_key)
        for level, entry in enumerate(levels):
            where = f"{side_key}[{level}]"
            if not isinstance(entry, (list, tuple)) or len(entry) != 3:
                raise MalformedPayloadError(
                    f"book {where}: expected [price, size, num_orders], got {entry!r:.80}",
                    field=side_key, row=level)
            records.append({
                "side": side, "level": level,
                "price": parse_float(entry[0], field=f"{where}.price", row=level),
                "size": parse_float(entry[1], field=f"{where}.size", row=level),
                "num_orders": int(parse_float(entry[2], field=f"{where}.num_orders", row=level)),
            })
    if not records:
        return empty_frame(ORDERBOOK_COLUMNS)
    frame = pd.DataFrame.from_records(records)
    frame = frame.assign(symbol=inst.symbol, venue=VENUE, venue_symbol=product_id,
                         quote=inst.quote, event_time=snapshot, available_time=snapshot,
                         sequence=sequence, source=source)
    return conform(frame, ORDERBOOK_COLUMNS)


def _tidy_trades(frame: pd.DataFrame) -> pd.DataFrame:
    # Pages can overlap and several trades share a millisecond: de-duplicate on the id and order
    # by time, then by numeric id (Coinbase ids increase with time within a product).
    order = pd.to_numeric(frame["trade_id"], errors="coerce")
    frame = frame.assign(_id_num=order).drop_duplicates("trade_id")
    return conform(frame.sort_values(["event_time", "_id_num"]), TRADE_COLUMNS)


class CoinbaseExchangeClient(HttpClient):
    """Live client for Coinbase Exchange public market data (no API key needed)."""

    def __init__(self, base_url: str = BASE_URL, *, source: str = "live",
                 requests_per_second: float | None = 8.0, **http_kwargs: Any) -> None:
        # Coinbase allows 10 public requests/s per IP; stay under it.
        super().__init__(base_url, requests_per_second=requests_per_second, **http_kwargs)
        self.source = source

    def fetch_candles(self, product_id: str, start: Any, end: Any, granularity: int = 3600, *,
                      now: Any = None) -> pd.DataFrame:
        """Closed bars whose open lies in ``[start, end)``, ascending.

        The range is split into windows of 300 bars (the endpoint's cap). Each window is asked for
        as ``[window_start, window_end]``; the API includes both ends, so a boundary bar can come
        back twice and is de-duplicated. A bar still forming (close > ``now``) is dropped.
        """
        if granularity not in INTERVALS:
            raise ValueError(f"unsupported Coinbase granularity {granularity}")
        start, end = utc_timestamp(start), utc_timestamp(end)
        now = utc_timestamp(now) if now is not None else self.now()
        step = pd.Timedelta(seconds=granularity)
        window = step * MAX_CANDLES_PER_REQUEST
        frames = []
        cursor = start.floor(f"{granularity}s")  # bars are aligned to multiples of granularity
        while cursor < end:
            window_end = min(cursor + window, end)
            payload, _ = self.get_json(f"/products/{product_id}/candles", {
                "granularity": granularity, "start": _iso(cursor), "end": _iso(window_end)})
            frames.append(parse_candles(payload, product_id, self.source, granularity=granularity))
            cursor += window
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(MARKET_BAR_COLUMNS)
        keep = ((frame["event_time"] >= start) & (frame["event_time"] < end)
                & (frame["available_time"] <= now))
        frame = frame[keep].drop_duplicates("event_time").sort_values("event_time")
        return conform(frame, MARKET_BAR_COLUMNS)

    def fetch_trades(self, product_id: str, start: Any, end: Any = None, max_pages: int = 50, *,
                     limit: int = 1000) -> pd.DataFrame:
        """Trades in ``[start, end)``, paging back from the newest with the ``after`` cursor.

        Stops once a page reaches trades older than ``start``, when the cursor runs out, or after
        ``max_pages`` (then the oldest part of the range is missing, and a warning says so).
        """
        start = utc_timestamp(start)
        end = utc_timestamp(end) if end is not None else None
        path = f"/products/{product_id}/trades"
        params: dict[str, Any] = {"limit": limit}
        frames: list[pd.DataFrame] = []
        reached_start = False
        for _ in range(max_pages):
            payload, response = self.get_json(path, params)
            page = parse_trades(payload, product_id, self.source)
            frames.append(page)
            cursor = response.headers.get("CB-AFTER")
            if page.empty or page["event_time"].min() < start or not cursor:
                reached_start = True
                break
            params["after"] = cursor
        if not reached_start:
            log.warning("coinbase trades %s: stopped after %d pages before reaching %s",
                        product_id, max_pages, start)
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(TRADE_COLUMNS)
        keep = frame["event_time"] >= start
        if end is not None:
            keep &= frame["event_time"] < end
        return _tidy_trades(frame[keep])

    def fetch_book(self, product_id: str) -> pd.DataFrame:
        """The current aggregated level-2 book (50 levels per side).

        Snapshot time: the payload's ``time`` when present (newer API versions send it), else the
        response's HTTP ``Date`` header (server clock, 1 s resolution), else our own clock.
        """
        payload, response = self.get_json(f"/products/{product_id}/book", {"level": 2})
        payload = load_payload(payload)
        if isinstance(payload, dict) and payload.get("time"):
            snapshot = parse_utc(payload["time"], field="time")
        elif response.headers.get("Date"):
            snapshot = utc_timestamp(email.utils.parsedate_to_datetime(response.headers["Date"]))
        else:
            snapshot = self.now()
        return parse_book(payload, product_id, snapshot, self.source)

