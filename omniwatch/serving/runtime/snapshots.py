"""Lookback windows of stored feature snapshots, with the newest window per target cached.

A window is the target's hourly rows in ``(as_of - lookback, as_of]``, one row per ``as_of_ts``
(the newest ``data_version``, i.e. the highest id, as ``omniwatch.ml.dataset.load_snapshots``).
The cached newest window is re-validated at most every ``check_interval_s`` with one indexed
query (the highest snapshot id inside the window's time range): a new hour, or a re-run day with
a new data version, both raise it, so either invalidates the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select

from omniwatch.errors import ErrorCode
from omniwatch.features.liquid import FEATURES
from omniwatch.ml.inference import infer_lineage
from omniwatch.serving.errors import insufficient
from omniwatch.serving.runtime.refresh import Refresher
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T = tables.feature_snapshots


@dataclass(frozen=True)
class Window:
    """The rows a model reads for one prediction; the last row is the one predicted."""

    track: str
    target: str
    as_of_ts: datetime
    frame: pd.DataFrame               # symbol, as_of_ts, feature columns; sorted by time
    snapshot: dict | None             # the stored row predicted (None: features came in the request)
    infer_lineage_id: str
    key: tuple = field(default=())    # cache key of a prediction on this window
    request_features: dict | None = None


def _columns(track: str, rows: list) -> list[str]:
    if track == "liquid":
        return list(FEATURES)
    return sorted({k for r in rows for k in (r.features or {})})


def build_window(track: str, target: str, as_of: datetime, rows: list, request_features: dict | None = None,
                 key: tuple = ()) -> Window:
    """A Window from snapshot rows (already one per hour) and, optionally, the request's row."""
    cols = _columns(track, rows) if request_features is None else (
        list(FEATURES) if track == "liquid" else sorted(request_features))
    records = [{"symbol": target, "as_of_ts": r.as_of_ts, **{c: (r.features or {}).get(c) for c in cols}}
               for r in rows]
    if request_features is not None:
        records.append({"symbol": target, "as_of_ts": as_of, **{c: request_features.get(c) for c in cols}})
    frame = pd.DataFrame.from_records(records, columns=["symbol", "as_of_ts", *cols])
    frame["as_of_ts"] = pd.to_datetime(frame["as_of_ts"], utc=True)
    frame[cols] = frame[cols].astype(float)
    last = rows[-1] if rows and request_features is None else None
    snapshot = None if last is None else {
        "snapshot_id": int(last.id), "as_of_ts": last.as_of_ts, "event_time": last.event_time,
        "data_version": last.data_version, "lineage_id": last.lineage_id}
    lineage = infer_lineage([(r.lineage_id, r.data_version) for r in rows], request_features)
    return Window(track, target, as_of, frame, snapshot, lineage, key, request_features)


class SnapshotStore:
    def __init__(self, database_url: str, check_interval_s: float = 1.0, refresher: Refresher | None = None):
        self.database_url, self.check_interval_s = database_url, check_interval_s
        self.refresher = refresher or Refresher()
        self._latest: dict[tuple[str, str, int], tuple[Window, int, float]] = {}
        self._lock = threading.Lock()
        self.reads = 0  # window loads from the database (tests and the bench watch it)

    def latest(self, track: str, target: str, lookback: int,
               on_new: Callable[[Window], None] | None = None) -> Window:
        """The newest window of ``target``; cached, re-validated at most every interval.
        ``on_new`` sees a new window before it is published (the predictor scores it there)."""
        ck = (track, target, lookback)
        cached = self._latest.get(ck)
        now = time.monotonic()
        if cached is not None:
            window, max_id, checked = cached
            if now - checked < self.check_interval_s:
                return window
            if self._max_id(track, target, window.as_of_ts - timedelta(hours=lookback - 1)) == max_id:
                self._latest[ck] = (window, max_id, now)
                return window
        with get_engine(self.database_url).connect() as conn:
            newest = conn.execute(select(func.max(T.c.as_of_ts)).where(
                T.c.track == track, T.c.target == target)).scalar()
        if newest is None:
            raise insufficient(ErrorCode.INSUFFICIENT_FEATURES, f"no feature snapshot of {track} target {target!r}",
                               target=target)
        window = self.window(track, target, newest, lookback)
        if on_new is not None:
            on_new(window)
        with self._lock:
            self._latest[ck] = (window, window.key[-1], now)
        return window

    def cached_latest(self, track: str, target: str, lookback: int,
                      on_new: Callable[[Window], None] | None = None) -> Window | None:
        """The newest window from memory (None when there is none, or when every read must check:
        interval 0). An entry past its interval is re-validated in the background meanwhile."""
        cached = self._latest.get((track, target, lookback))
        if cached is None or self.check_interval_s <= 0:
            return None
        if time.monotonic() - cached[2] >= self.check_interval_s:
            self.refresher.submit(("snapshots", track, target, lookback), self.latest, track, target, lookback, on_new)
        return cached[0]

    def newest_at_or_before(self, track: str, target: str, as_of: datetime) -> datetime:
        """``as_of_ts`` of the newest snapshot at or before ``as_of`` (what we had then)."""
        with get_engine(self.database_url).connect() as conn:
            newest = conn.execute(select(func.max(T.c.as_of_ts)).where(
                T.c.track == track, T.c.target == target, T.c.as_of_ts <= as_of)).scalar()
        if newest is None:
            raise insufficient(ErrorCode.INSUFFICIENT_FEATURES,
                               f"no feature snapshot of {target!r} at or before {as_of.isoformat()}", target=target)
        return newest

    def window(self, track: str, target: str, as_of: datetime, lookback: int, *,
               last_id: int | None = None, request_features: dict | None = None) -> Window:
        """The window ending at ``as_of``: the stored row there (``last_id`` when given), or the
        request's features after the stored history before it."""
        self.reads += 1
        start = as_of - timedelta(hours=lookback - 1)
        cols = [T.c.id, T.c.as_of_ts, T.c.event_time, T.c.data_version, T.c.lineage_id, T.c.features]
        query = select(*cols).where(T.c.track == track, T.c.target == target, T.c.as_of_ts >= start,
                                    T.c.as_of_ts <= as_of).order_by(T.c.as_of_ts, T.c.id)
        with get_engine(self.database_url).connect() as conn:
            raw = conn.execute(query).all()
        max_id = max((int(r.id) for r in raw), default=0)
        by_hour: dict = {}
        for r in raw:
            by_hour[r.as_of_ts] = r  # ordered by id within an hour: the last is the newest
        end = by_hour.pop(as_of, None)
        if last_id is not None:
            end = next((r for r in raw if r.id == last_id), None)
        rows = list(by_hour.values())
        if request_features is None:
            if end is None:
                raise insufficient(ErrorCode.INSUFFICIENT_FEATURES,
                                   f"no feature snapshot of {target!r} at {as_of.isoformat()}", target=target)
            rows.append(end)
        key = (track, target, lookback, int(end.id) if end is not None and request_features is None else 0, max_id)
        return build_window(track, target, as_of, rows, request_features, key)

    def _max_id(self, track: str, target: str, start: datetime) -> int:
        with get_engine(self.database_url).connect() as conn:
            value = conn.execute(select(func.max(T.c.id)).where(
                T.c.track == track, T.c.target == target, T.c.as_of_ts >= start)).scalar()
        return int(value or 0)
