"""Small hand-built canonical frames for the check tests (a few symbols x a few hours)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from omniwatch import frames

SYMBOLS = ("BTC", "ETH", "SOL")
BASE_PRICE = {"BTC": 42_000.0, "ETH": 2_300.0, "SOL": 100.0}
T0 = pd.Timestamp("2024-01-01T00:00:00Z")


def ts(text: str) -> pd.Timestamp:
    """A UTC timestamp from ISO text."""
    return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")


def market_bars(symbols=SYMBOLS, hours: int = 6, start: pd.Timestamp = T0) -> pd.DataFrame:
    """Clean hourly bars: close drifts 0.1 % an hour, open/high/low around it, volume 10."""
    parts = []
    for symbol in symbols:
        times = pd.date_range(start, periods=hours, freq="h")
        close = BASE_PRICE[symbol] * (1.001 ** np.arange(1, hours + 1))
        open_ = close / 1.001
        parts.append(pd.DataFrame({
            "symbol": symbol, "venue": "binance", "venue_symbol": f"{symbol}USDT", "quote": "USDT",
            "interval": "1h", "event_time": times, "available_time": times + pd.Timedelta(hours=1),
            "open": open_, "high": np.maximum(open_, close) * 1.002, "low": np.minimum(open_, close) * 0.998,
            "close": close, "volume": 10.0, "source": "test",
        }))
    return frames.conform(pd.concat(parts, ignore_index=True), frames.MARKET_BAR_COLUMNS)


def funding_rates(symbols=SYMBOLS, start: pd.Timestamp = T0, periods: int = 9) -> pd.DataFrame:
    """Clean 8-hourly funding settlements at 0.01 %."""
    parts = []
    for symbol in symbols:
        times = pd.date_range(start, periods=periods, freq="8h")
        parts.append(pd.DataFrame({
            "symbol": symbol, "venue": "binance_usdm", "venue_symbol": f"{symbol}USDT", "event_time": times,
            "available_time": times, "funding_rate": 0.0001, "mark_price": BASE_PRICE[symbol], "source": "test",
        }))
    return frames.conform(pd.concat(parts, ignore_index=True), frames.FUNDING_COLUMNS)


def onchain_signals(symbols=("BTC", "ETH"), days: int = 3, metrics=("AdrActCnt", "TxCnt")) -> pd.DataFrame:
    """Clean daily metrics, available at the day's end."""
    rows = []
    for symbol in symbols:
        for metric in metrics:
            for day in pd.date_range(T0, periods=days, freq="D"):
                rows.append({"symbol": symbol, "provider": "coinmetrics", "metric": metric, "event_time": day,
                             "available_time": day + pd.Timedelta(days=1), "value": 1000.0, "source": "test"})
    return frames.conform(pd.DataFrame(rows), frames.ONCHAIN_COLUMNS)


def trades_ticks(n: int = 4) -> pd.DataFrame:
    """Clean BTC-USD trades, one per second."""
    times = pd.date_range(T0, periods=n, freq="s")
    frame = pd.DataFrame({
        "symbol": "BTC", "venue": "coinbase", "venue_symbol": "BTC-USD", "quote": "USD",
        "trade_id": [str(100 + i) for i in range(n)], "event_time": times, "available_time": times,
        "price": 42_000.0 + np.arange(n), "size": 0.01, "side": ["buy", "sell"] * (n // 2) + ["buy"] * (n % 2),
        "source": "test",
    })
    return frames.conform(frame, frames.TRADE_COLUMNS)


def orderbook_l2(levels: int = 3, snapshots: int = 2) -> pd.DataFrame:
    """Clean BTC-USD books: bids below 42,000, asks above."""
    rows = []
    for s, when in enumerate(pd.date_range(T0, periods=snapshots, freq="min")):
        for level in range(levels):
            for side, price in (("bid", 41_999.0 - level), ("ask", 42_001.0 + level)):
                rows.append({"symbol": "BTC", "venue": "coinbase", "venue_symbol": "BTC-USD", "quote": "USD",
                             "event_time": when, "available_time": when, "sequence": 1000 + s, "side": side,
                             "level": level, "price": price, "size": 1.5, "num_orders": 1, "source": "test"})
    return frames.conform(pd.DataFrame(rows), frames.ORDERBOOK_COLUMNS)


def row_index(frame: pd.DataFrame, symbol: str, event_time: str) -> int:
    """The index label of the row of ``symbol`` at ``event_time``."""
    hits = frame.index[(frame["symbol"] == symbol) & (frame["event_time"] == ts(event_time))]
    assert len(hits) >= 1, (symbol, event_time)
    return int(hits[0])


def named(failures: list[dict], symbol: str | None, event_time: str | None, column: str | None = None) -> bool:
    """Whether some failure names exactly this symbol, event time (ISO) and column."""
    iso = None if event_time is None else ts(event_time).isoformat()
    return any(
        f["symbol"] == symbol and f["event_time"] == iso and (column is None or f["column"] == column)
        for f in failures
    )
