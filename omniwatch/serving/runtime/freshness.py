"""How old the snapshot a prediction reads is, and the refusal of stale ones (``stale_features``).

The age of a snapshot is ``now - snapshot.as_of_ts``, where "now" (the reference time) is:

- the request's explicit ``as_of_ts`` when it gives one (a point-in-time question: "what would
  we have served then?"; the newest snapshot at or before it is used);
- otherwise, with ``OMNIWATCH_SOURCE=live``, the wall clock;
- otherwise (replay), the **replay frontier**: the newest ``available_time`` in ``market_bars``,
  i.e. the warehouse's own data clock. The bundled sample is a year old, yet it still serves;
  what is refused is a feature pipeline lagging behind the bars it was built from. The frontier
  is read with one query and kept for ``ttl_s`` seconds (``cachetools.TTLCache``); with no bars
  at all there is no data clock and the wall clock stands in.

A snapshot older than ``OMNIWATCH_MAX_SNAPSHOT_AGE`` (default 2 h) is refused with HTTP 503,
code ``stale_features``, context ``snapshot_as_of``, ``age_seconds``, ``max_age_seconds``,
``target``. A snapshot ahead of the reference (a new hour whose bars are not in yet) is age 0.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from cachetools import TTLCache
from sqlalchemy import func, select

from omniwatch.serving.errors import ApiError, ApiErrorCode
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine


def stale(target: str, snapshot_as_of: datetime, age_seconds: float, max_age: timedelta) -> ApiError:
    return ApiError(503, ApiErrorCode.STALE_FEATURES,
                    f"the newest feature snapshot of {target!r} ({snapshot_as_of.isoformat()}) is "
                    f"{age_seconds:.0f} s old, more than the {max_age.total_seconds():.0f} s allowed",
                    {"snapshot_as_of": snapshot_as_of.isoformat(), "age_seconds": age_seconds,
                     "max_age_seconds": max_age.total_seconds(), "target": target})


def age_seconds(snapshot_as_of: datetime, now: datetime) -> float:
    return max(0.0, (now - snapshot_as_of).total_seconds())


class Freshness:
    """The reference clock of one app and the age limit; thread-safe."""

    def __init__(self, database_url: str, source: str, max_age: timedelta, ttl_s: float = 5.0):
        self.database_url, self.source, self.max_age = database_url, source, max_age
        self._frontier: TTLCache | None = TTLCache(maxsize=1, ttl=ttl_s) if ttl_s > 0 else None
        self._lock = threading.Lock()  # TTLCache is not thread-safe

    def now(self) -> datetime:
        """The reference time of a request without ``as_of`` (may read the warehouse)."""
        cached = self.cached_now()
        if cached is not None:
            return cached
        with get_engine(self.database_url).connect() as conn:
            newest = conn.execute(select(func.max(tables.market_bars.c.available_time))).scalar()
        frontier = newest if newest is not None else _wall()
        if self._frontier is not None:
            with self._lock:
                self._frontier["frontier"] = frontier
        return frontier

    def cached_now(self) -> datetime | None:
        """The reference time without I/O, or None when the frontier must be read first."""
        if self.source == "live":
            return _wall()
        if self._frontier is None:
            return None
        with self._lock:
            return self._frontier.get("frontier")

    def check(self, target: str, snapshot_as_of: datetime, now: datetime, enforce: bool = True) -> float:
        """The snapshot's age in seconds; ``stale_features`` past the limit when enforced."""
        age = age_seconds(snapshot_as_of, now)
        if enforce and age > self.max_age.total_seconds():
            raise stale(target, snapshot_as_of, age, self.max_age)
        return age


def _wall() -> datetime:
    return datetime.now(UTC)
