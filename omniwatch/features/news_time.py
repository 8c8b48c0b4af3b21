"""When a news item became usable: the later of its publication and our first sight of it.

``available_time`` of a news event is its publication time (RSS ``pubDate``, GDELT ``DATEADDED``),
but a live connector only sees an item when it fetches it (``first_seen_at``, kept at the earliest
fetch). An item published at 09:00 and first fetched at 17:00 could not have been served before
17:00, so training must not see it before then either. Rows without ``first_seen_at`` (frames
straight from a connector, rows written before the column existed and not backfilled) count from
``available_time``.
"""

from __future__ import annotations

import pandas as pd

FIRST_SEEN = "first_seen_at"


def usable_time(events: pd.DataFrame) -> pd.Series:
    """``max(available_time, first_seen_at)`` per row, UTC (``available_time`` where unseen)."""
    available = pd.to_datetime(events["available_time"], utc=True)
    if FIRST_SEEN not in events.columns:
        return available
    seen = pd.to_datetime(events[FIRST_SEEN], utc=True)
    # One unit on both sides: SQLite and PostgreSQL may hand back different resolutions.
    available, seen = available.astype("datetime64[ns, UTC]"), seen.astype("datetime64[ns, UTC]")
    return available.where(seen.isna() | (seen <= available), seen)


def as_usable(events: pd.DataFrame | None) -> pd.DataFrame | None:
    """A copy of ``events`` whose ``available_time`` is :func:`usable_time`, so every
    point-in-time filter written against ``available_time`` applies to when we could use it."""
    if events is None or events.empty or FIRST_SEEN not in events.columns:
        return events
    return events.assign(available_time=usable_time(events))
