"""Inputs shared by the news first-sight tests: a week of synthetic BTC bars and empty side tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

EMPTY = pd.DataFrame(columns=["symbol", "event_time", "available_time", "funding_rate", "metric", "value"])


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


def btc_bars(start: str = "2026-09-25", end: str = "2026-10-01 12:00") -> pd.DataFrame:
    times = pd.date_range(ts(start), ts(end), freq="h")
    close = 60_000 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.002, len(times))))
    return pd.DataFrame({"symbol": "BTC", "event_time": times, "available_time": times + pd.Timedelta(hours=1),
                         "open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
                         "volume": 10.0})


def count_at(features: pd.DataFrame, as_of: pd.Timestamp) -> float:
    return float(features.loc[features["as_of_ts"] == as_of, "news_count_24h"].iloc[0])
