"""Helpers shared by the checks: time arguments, per-series grouping, row failures, time ranges."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from omniwatch.checks.outcome import MAX_LISTED_FAILURES, failure

TimeLike: TypeAlias = datetime | pd.Timestamp | str
SERIES_COLUMNS = ("symbol", "venue", "venue_symbol")


def utc(value: TimeLike) -> pd.Timestamp:
    """A UTC timestamp from a datetime/Timestamp/ISO string; a naive value is taken as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def to_timedelta(value: timedelta | pd.Timedelta | str | float) -> pd.Timedelta:
    """A timedelta from a timedelta, a number of hours, a bar-interval label ("1m", "1h", "1d":
    minutes, hours, days) or any other pandas timedelta string ("90min")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return pd.Timedelta(hours=float(value))
    if isinstance(value, str) and (match := re.fullmatch(r"(\d+)([mhd])", value.strip())):
        return pd.Timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return pd.Timedelta(value)


def hours(value: pd.Timedelta) -> float:
    """A duration in hours, rounded for display."""
    return round(value / pd.Timedelta(hours=1), 4)


def series_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that identify one time series (symbol, and venue/instrument where present)."""
    return [c for c in SERIES_COLUMNS if c in frame.columns]


def missing_columns(frame: pd.DataFrame, required: Sequence[str]) -> list[str]:
    """Required columns the frame lacks."""
    return [c for c in required if c not in frame.columns]


def row_failures(
    frame: pd.DataFrame,
    mask: pd.Series | np.ndarray,
    column: str | None,
    reason: Callable[[pd.Series], str],
    *,
    value_column: str | None = None,
    extra_columns: Sequence[str] = (),
    limit: int = MAX_LISTED_FAILURES,
) -> tuple[int, list[dict[str, Any]]]:
    """The count of rows where ``mask`` holds and failure dicts for the first ``limit`` of them
    (ordered by symbol and event time), each naming symbol, event time, column and value."""
    mask_arr = np.asarray(mask, dtype=bool)
    count = int(mask_arr.sum())
    if count == 0:
        return 0, []
    bad = frame.loc[mask_arr]
    order = [c for c in ("symbol", "event_time") if c in bad.columns]
    if order:
        bad = bad.sort_values(order, kind="stable", na_position="first")
    value_col = value_column or column
    out = []
    for _, row in bad.head(limit).iterrows():
        extras = {c: row[c] for c in extra_columns if c in row.index}
        out.append(
            failure(
                symbol=row.get("symbol"),
                event_time=row.get("event_time"),
                column=column,
                value=row.get(value_col) if value_col else None,
                reason=reason(row),
                **extras,
            )
        )
    return count, out


def compress_ranges(
    times: Sequence[pd.Timestamp] | pd.DatetimeIndex, step: pd.Timedelta
) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Sorted timestamps folded into contiguous runs: (first, last, count) with ``step`` spacing."""
    idx = pd.DatetimeIndex(sorted(times))
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx.as_unit("ns").asi8) != step.value) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks - 1, [len(idx) - 1]])
    return [(idx[s], idx[e], int(e - s + 1)) for s, e in zip(starts, ends, strict=True)]


def expected_grid(start: pd.Timestamp, stop: pd.Timestamp, step: pd.Timedelta) -> pd.DatetimeIndex:
    """Grid points aligned to ``step`` (from the epoch, so 1 h and 8 h align to UTC midnight) with
    ``start <= t <= stop``."""
    first = start.ceil(step)
    if stop < first:
        return pd.DatetimeIndex([], tz="UTC")
    return pd.date_range(first, stop, freq=step)


def series_frames(
    frame: pd.DataFrame, symbols: Sequence[str] | None
) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
    """(label, identity, rows) per series; a symbol in ``symbols`` with no rows gets an empty one."""
    frame = frame.reset_index(drop=True)
    cols = series_columns(frame)
    out: list[tuple[str, dict[str, Any], pd.DataFrame]] = []
    if cols and len(frame):
        groups = list(frame.groupby(cols, dropna=False, sort=True))
        per_symbol = pd.Series([k[0] for k, _ in groups]).value_counts()
        for key, rows in groups:
            ident = dict(zip(cols, key, strict=True))
            label = str(key[0]) if per_symbol[key[0]] == 1 else "/".join(str(k) for k in key)
            out.append((label, ident, rows))
    seen = {ident.get("symbol") for _, ident, _ in out}
    out += [(s, {"symbol": s}, frame.iloc[0:0]) for s in (symbols or ()) if s not in seen]
    return out
