"""Canonical in-memory frames: the columns every connector returns and the warehouse stores.

All timestamps are timezone-aware UTC. ``event_time`` is when a thing happened (a bar's open,
a trade, a funding settlement, an on-chain day's start); ``available_time`` is the earliest time
we could have known it (a bar's close, a day's end). Point-in-time features filter on the second.
"""

from __future__ import annotations

import pandas as pd

MARKET_BAR_COLUMNS = [
    "symbol", "venue", "venue_symbol", "quote", "interval", "event_time", "available_time",
    "open", "high", "low", "close", "volume", "source",
]
MARKET_BAR_KEY = ["venue", "venue_symbol", "interval", "event_time"]

TRADE_COLUMNS = [
    "symbol", "venue", "venue_symbol", "quote", "trade_id", "event_time", "available_time",
    "price", "size", "side", "source",
]
TRADE_KEY = ["venue", "venue_symbol", "trade_id"]

ORDERBOOK_COLUMNS = [
    "symbol", "venue", "venue_symbol", "quote", "event_time", "available_time", "sequence",
    "side", "level", "price", "size", "num_orders", "source",
]
ORDERBOOK_KEY = ["venue", "venue_symbol", "event_time", "side", "level"]

FUNDING_COLUMNS = [
    "symbol", "venue", "venue_symbol", "event_time", "available_time", "funding_rate",
    "mark_price", "source",
]
FUNDING_KEY = ["venue", "venue_symbol", "event_time"]

ONCHAIN_COLUMNS = [
    "symbol", "provider", "metric", "event_time", "available_time", "value", "source",
]
ONCHAIN_KEY = ["provider", "symbol", "metric", "event_time"]

# Events plane (news, filings): one row per source item. ``available_time`` is publication or
# SEC acceptance time, never a period date. ``payload`` keeps source fields (dict) including the
# names, tickers and CIKs that entity resolution reads.
EVENT_COLUMNS = [
    "source", "source_id", "track", "event_type", "title", "body", "url", "event_time",
    "available_time", "tone", "payload",
]
EVENT_KEY = ["source", "source_id"]

_TIME_COLUMNS = ("event_time", "available_time")


def empty_frame(columns: list[str]) -> pd.DataFrame:
    """An empty frame with the canonical columns (time columns already UTC-typed)."""
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    for col in _TIME_COLUMNS:
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def conform(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Order and type a connector's frame as the canonical columns; missing columns are an error."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks canonical columns {missing}")
    out = frame[columns].copy()
    for col in _TIME_COLUMNS:
        if col in out:
            out[col] = pd.to_datetime(out[col], utc=True)
    return out.reset_index(drop=True)
