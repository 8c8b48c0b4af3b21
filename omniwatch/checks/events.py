"""Checks on news and filing events (the events plane), one property each.

Events feed entity links, news features and the VC model, so a duplicated source id would double
count, a timestamp in the future would leak tomorrow's news into today's features, an unparseable
date would silently drop out of every point-in-time join, and an empty text cannot be linked.
"""

from __future__ import annotations

import pandas as pd

from omniwatch import frames
from omniwatch.checks.common import TimeLike, missing_columns, utc
from omniwatch.checks.outcome import CheckOutcome, failure, make_outcome

FUTURE_TOLERANCE = pd.Timedelta(minutes=5)
EVENT_SOURCES = ("gdelt", "rss", "cryptopanic", "edgar")
EVENT_TRACKS = ("liquid", "vc")


def _fail_rows(frame: pd.DataFrame, mask, column: str, reason: str) -> list[dict]:
    bad = frame.loc[mask]
    return [failure(event_time=r.get("event_time") if isinstance(r.get("event_time"), pd.Timestamp) else None,
                    column=column, value=r.get(column), reason=reason, source=r.get("source"),
                    source_id=r.get("source_id"))
            for _, r in bad.head(50).iterrows()]


def check_event_schema(frame: pd.DataFrame, asset_name: str) -> CheckOutcome:
    """Canonical event columns, known sources and tracks, non-empty ids, UTC time columns, tone on
    the pipeline's [-1, 1] scale (or missing)."""
    name, description = "match_schema", f"{asset_name} has the canonical event columns and domains"
    failures = [failure(column=c, reason="required column is missing")
                for c in missing_columns(frame, frames.EVENT_COLUMNS)]
    failures += [failure(column=c, reason="column is not in the canonical schema")
                 for c in frame.columns if c not in frames.EVENT_COLUMNS]
    if not failures and len(frame):
        for col in ("event_time", "available_time"):
            if not isinstance(frame[col].dtype, pd.DatetimeTZDtype) or str(frame[col].dt.tz) != "UTC":
                failures.append(failure(column=col, value=str(frame[col].dtype), reason="must be tz-aware UTC"))
        for col, allowed in (("source", EVENT_SOURCES), ("track", EVENT_TRACKS)):
            mask = ~frame[col].isin(allowed)
            failures += _fail_rows(frame, mask, col, f"not one of {allowed}")
        mask = frame["source_id"].isna() | (frame["source_id"].astype(str).str.strip() == "")
        failures += _fail_rows(frame, mask, "source_id", "empty source id")
        tone = pd.to_numeric(frame["tone"], errors="coerce")
        mask = (tone.notna() & ~tone.between(-1.0, 1.0)) | (frame["tone"].notna() & tone.isna())
        failures += _fail_rows(frame, mask, "tone", "not a number on the pipeline's [-1, 1] tone scale")
    return make_outcome(name, description, failures, metadata={"rows_checked": len(frame)})


def check_event_duplicates(frame: pd.DataFrame, asset_name: str) -> CheckOutcome:
    """No two events share (source, source_id): the same story stored twice would count twice."""
    name = "have_no_duplicate_source_ids"
    description = "each event has a unique (source, source_id)"
    mask = frame.duplicated(frames.EVENT_KEY, keep=False) if len(frame) else pd.Series([], dtype=bool)
    return make_outcome(name, description, _fail_rows(frame, mask, "source_id", "source id occurs more than once"),
                        failed_count=int(mask.sum()), metadata={"rows_checked": len(frame)})


def check_event_dates_parse(frame: pd.DataFrame, asset_name: str) -> CheckOutcome:
    """Every event has an event_time and an available_time (a NaT never joins point in time)."""
    name = "have_parseable_dates"
    description = "event_time and available_time are present and parsed"
    failures, count = [], 0
    for col in ("event_time", "available_time"):
        mask = frame[col].isna() if col in frame else pd.Series(True, index=frame.index)
        count += int(mask.sum())
        failures += _fail_rows(frame, mask, col, f"{col} is missing or unparseable")
    return make_outcome(name, description, failures, failed_count=count, metadata={"rows_checked": len(frame)})


def check_event_not_in_future(frame: pd.DataFrame, asset_name: str, now: TimeLike) -> CheckOutcome:
    """No event is available (or happened) after ``now``: a future stamp would leak into features."""
    name = "have_no_future_timestamps"
    description = f"available_time and event_time are not later than now + {FUTURE_TOLERANCE}"
    limit = utc(now) + FUTURE_TOLERANCE
    failures, count = [], 0
    for col in ("available_time", "event_time"):
        mask = (frame[col] > limit).fillna(False) if len(frame) else pd.Series([], dtype=bool)
        count += int(mask.sum())
        failures += _fail_rows(frame, mask, col, f"{col} is after {limit.isoformat()}")
    return make_outcome(name, description, failures, failed_count=count,
                        metadata={"rows_checked": len(frame), "now": limit.isoformat()})


def check_event_text(frame: pd.DataFrame, asset_name: str) -> CheckOutcome:
    """Every event has a non-empty title: empty text cannot be linked to an entity or scored."""
    name = "have_text"
    description = "every event has a non-empty title"
    mask = frame["title"].isna() | (frame["title"].astype(str).str.strip() == "") if len(frame) \
        else pd.Series([], dtype=bool)
    return make_outcome(name, description, _fail_rows(frame, mask, "title", "empty title"),
                        failed_count=int(mask.sum()), metadata={"rows_checked": len(frame)})
