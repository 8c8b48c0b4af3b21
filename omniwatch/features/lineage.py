"""Lineage and data versions of feature snapshots.

``lineage_id`` names exactly what a snapshot day read: for each input asset, the daily raw
partitions in its warm-up window and an order-independent content hash of the rows it could see
(``available_time`` at or before the day's last ``as_of_ts``; for news the later of publication and
first sight, as the features use it). ``data_version`` hashes the explicit
feature code version (:data:`FEATURE_CODE_VERSION`, also the asset's Dagster ``code_version``)
together with the lineage, so it changes when the version is bumped or any input partition
changes, and stays the same when a partition is re-run with identical data (upserts then touch
nothing new). A docstring or refactoring edit changes nothing: bump the constant when a formula
or the feature set changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from omniwatch.features.news_time import as_usable

DAY = pd.Timedelta(days=1)
# Days of history before a snapshot day that each input can reach (see liquid.py windows).
INPUT_WARMUP_DAYS = {"market_bars": 8, "funding_rates": 2, "onchain_signals": 9, "news_events": 2}
_VALUE_COLUMNS = {
    "market_bars": ["venue", "venue_symbol", "event_time", "available_time", "open", "high", "low", "close", "volume"],
    "funding_rates": ["venue", "venue_symbol", "event_time", "available_time", "funding_rate"],
    "onchain_signals": ["provider", "metric", "event_time", "available_time", "value"],
    "news_events": ["source", "source_id", "event_time", "available_time", "tone", "title"],
}
# Bump when omniwatch/features/liquid.py computes something different (a formula, a window, the
# feature or label set): every snapshot's data_version changes and the days are written anew.
FEATURE_CODE_VERSION = "liquid-features-2"


def _row_hashes(table: str, frame: pd.DataFrame) -> np.ndarray:
    cols = _VALUE_COLUMNS[table]
    if frame.empty:
        return np.zeros(0, dtype=np.uint64)
    data = frame[cols].copy()
    for c in ("event_time", "available_time"):
        data[c] = data[c].astype("datetime64[ns, UTC]").astype("int64")
    return pd.util.hash_pandas_object(data, index=False).to_numpy(dtype=np.uint64)


def _ns(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Epoch nanoseconds of a UTC time column (comparable with ``Timestamp.value``)."""
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    return frame[column].astype("datetime64[ns, UTC]").astype("int64").to_numpy()


@dataclass(frozen=True)
class DayLineage:
    lineage_id: str
    data_version: str
    inputs: dict  # asset -> {"partitions": [first, last], "rows": n, "content_hash": hex}


def day_lineages(
    inputs: dict[str, pd.DataFrame], symbol: str, days: list[pd.Timestamp]
) -> dict[pd.Timestamp, DayLineage]:
    """Lineage of each snapshot day of ``symbol`` (its rows have event_time in [day, day + 1d))."""
    prepared = {}
    for table, frame in inputs.items():
        # News carries no symbol column: every symbol's day reads all of it (a superset).
        sub = frame[frame["symbol"] == symbol] if len(frame) and "symbol" in frame else frame
        if table == "news_events":
            sub = as_usable(sub)  # hashed and windowed by when each item became usable
        sub = sub.sort_values("available_time") if len(sub) else sub
        hashes = _row_hashes(table, sub)
        avail, event = _ns(sub, "available_time"), _ns(sub, "event_time")
        prepared[table] = (hashes, avail, event)
    code = FEATURE_CODE_VERSION
    out: dict[pd.Timestamp, DayLineage] = {}
    for day in days:
        last_as_of = (day + DAY).value
        parts, detail = [symbol, day.date().isoformat()], {}
        for table, (hashes, avail, event) in prepared.items():
            first_day = day - INPUT_WARMUP_DAYS[table] * DAY
            lo = first_day.value
            mask = ((avail >= lo) if table == "news_events" else (event >= lo)) & (avail <= last_as_of)
            # Sum modulo 2**64 of row hashes: independent of row order, sensitive to any value.
            digest = int(hashes[mask].sum(dtype=np.uint64)) if mask.any() else 0
            detail[table] = {
                "partitions": [first_day.date().isoformat(), day.date().isoformat()],
                "rows": int(mask.sum()),
                "content_hash": f"{digest:016x}",
            }
            parts.append(f"{table}:{detail[table]['partitions']}:{digest:016x}:{int(mask.sum())}")
        lineage_id = hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
        data_version = hashlib.sha256(f"{code}|{lineage_id}".encode()).hexdigest()[:24]
        out[day] = DayLineage(lineage_id, data_version, detail)
    return out
