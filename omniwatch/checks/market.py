"""Time-series checks of market bars: hourly completeness, freshness and outlier returns.

Features and models assume one bar per hour per series: a missing span silently stretches a
"1 h" return over many hours, and a stale feed makes yesterday's price look current. A single
40 % hourly jump in BTC is far likelier a bad print than a market move, and it would dominate any
volatility estimate. Each check works per series (symbol, and venue/instrument where present)
and names the symbol and hour that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from omniwatch.checks.common import (
    TimeLike,
    compress_ranges,
    expected_grid,
    hours,
    missing_columns,
    series_frames,
    to_timedelta,
    utc,
)
from omniwatch.checks.outcome import CheckOutcome, failure, iso, make_outcome


def _bars_of(frame: pd.DataFrame, interval: str) -> pd.DataFrame:
    return frame.loc[frame["interval"] == interval] if "interval" in frame.columns else frame


def check_hourly_gaps(
    frame: pd.DataFrame,
    window_start: TimeLike,
    window_end: TimeLike,
    now: TimeLike,
    *,
    max_gap_ratio: float = 0.02,
    symbols: Sequence[str] | None = None,
    interval: str = "1h",
) -> CheckOutcome:
    """Per series, the share of expected bars that are missing stays at or below
    ``max_gap_ratio``. A bar opening at ``t`` is expected when ``window_start <= t`` and it has
    closed by the reference ``min(window_end, now)``. Missing hours are listed as ranges;
    ``failed_count`` counts missing bars in the series that breach the ratio. ``symbols`` names
    series that must be present (else the symbols in the batch); an empty batch where bars were
    expected fails."""
    name, step = "have_no_hourly_gaps", to_timedelta(interval)
    description = f"each symbol has at most {max_gap_ratio:.2%} of its expected {interval} bars missing"
    start, reference = utc(window_start), min(utc(window_end), utc(now))
    expected = expected_grid(start, reference - step, step)
    meta: dict[str, Any] = {"window_start": iso(start), "reference": iso(reference), "interval": interval,
                            "expected_per_series": len(expected), "max_gap_ratio": max_gap_ratio,
                            "rows_checked": len(frame)}
    if missing := missing_columns(frame, ["event_time"]):
        return make_outcome(name, description, [failure(column=missing[0], reason="column missing")], metadata=meta)
    series = series_frames(_bars_of(frame, interval), symbols)
    if not series and len(expected):
        reason = f"no {interval} bars in the batch; {len(expected)} per symbol expected from {iso(start)}"
        return make_outcome(name, description, [failure(column="event_time", reason=reason)],
                            failed_count=len(expected), metadata=meta)
    failures, tolerated, ratios, missing_counts, failed = [], [], {}, {}, 0
    for label, ident, rows in series:
        present = pd.DatetimeIndex(rows["event_time"].dropna().unique())
        absent = expected.difference(present)
        ratio = len(absent) / len(expected) if len(expected) else 0.0
        ratios[label], missing_counts[label] = round(ratio, 6), len(absent)
        ranges = compress_ranges(absent, step)
        entries = [failure(symbol=ident.get("symbol"), event_time=first, column="event_time", value=count,
                           reason=f"{count} missing {interval} bars from {iso(first)} to {iso(last)}",
                           end_time=last, venue_symbol=ident.get("venue_symbol"))
                   for first, last, count in ranges]
        if ratio > max_gap_ratio:
            failed += len(absent)
            failures += entries
        else:
            tolerated += entries
    meta.update(gap_ratio_by_series=ratios, missing_by_series=missing_counts,
                tolerated_missing_ranges=[f"{e['symbol']} {e['event_time']}..{e['end_time']}" for e in tolerated[:20]])
    return make_outcome(name, description, failures, failed_count=failed, metadata=meta)


def check_freshness(
    frame: pd.DataFrame,
    window_start: TimeLike,
    window_end: TimeLike,
    now: TimeLike,
    *,
    max_lag: timedelta | str | float = "2h",
    symbols: Sequence[str] | None = None,
) -> CheckOutcome:
    """Per series, the newest ``available_time`` is within ``max_lag`` of the reference
    ``min(now, window_end)``; each stale series is named with its lag in hours. An empty batch
    (or an expected symbol without rows) fails, unless the window has not started yet."""
    name, lag_limit = "are_fresh", to_timedelta(max_lag)
    description = (f"each symbol's newest bar became available within {hours(lag_limit)} h "
                   "of min(now, window end)")
    start, reference = utc(window_start), min(utc(window_end), utc(now))
    meta: dict[str, Any] = {"reference": iso(reference), "max_lag_hours": hours(lag_limit),
                            "rows_checked": len(frame)}
    if reference <= start:
        meta["note"] = "window has not started; nothing expected"
        return make_outcome(name, description, [], metadata=meta)
    if missing := missing_columns(frame, ["event_time", "available_time"]):
        return make_outcome(name, description, [failure(column=missing[0], reason="column missing")], metadata=meta)
    series = series_frames(frame, symbols)
    if not series:
        reason = f"batch is empty: no data available up to the reference {iso(reference)}"
        return make_outcome(name, description, [failure(column="available_time", reason=reason)], metadata=meta)
    failures: list[dict[str, Any]] = []
    lags: dict[str, float | None] = {}
    for label, ident, rows in series:
        known = rows.loc[rows["available_time"].notna()]
        if known.empty:
            lags[label] = None
            failures.append(failure(symbol=ident.get("symbol"), column="available_time",
                                    reason=f"no rows with an available_time up to {iso(reference)}",
                                    venue_symbol=ident.get("venue_symbol")))
            continue
        newest = known.sort_values("available_time", kind="stable").iloc[-1]
        lag = reference - newest["available_time"]
        lags[label] = hours(lag)
        if lag > lag_limit:
            failures.append(failure(
                symbol=ident.get("symbol"), event_time=newest["event_time"], column="available_time",
                value=newest["available_time"], lag_hours=hours(lag), venue_symbol=ident.get("venue_symbol"),
                reason=f"newest row available {hours(lag)} h before {iso(reference)} (max {hours(lag_limit)} h)"))
    return make_outcome(name, description, failures, metadata={**meta, "lag_hours_by_series": lags})


def check_outlier_returns(
    frame: pd.DataFrame,
    *,
    max_abs_log_return: float = 0.25,
    max_robust_z: float | None = None,
    interval: str = "1h",
) -> CheckOutcome:
    """No bar-to-bar log return of ``close`` exceeds ``max_abs_log_return`` in absolute value
    (and, if ``max_robust_z`` is set, no return lies further than that many robust standard
    deviations, median/MAD, from its series' median). Only adjacent bars (one ``interval`` apart)
    are compared, so a gap is not mistaken for a jump; nulls and non-positive closes are skipped
    (other checks own them). Each failure names the symbol and the bar that jumped."""
    name, step = "have_no_outlier_returns", to_timedelta(interval)
    description = f"no {interval} log return of close exceeds {max_abs_log_return} in absolute value" + (
        f" or a robust z-score of {max_robust_z}" if max_robust_z is not None else "")
    meta: dict[str, Any] = {"max_abs_log_return": max_abs_log_return, "max_robust_z": max_robust_z,
                            "rows_checked": len(frame)}
    if missing := missing_columns(frame, ["event_time", "close"]):
        return make_outcome(name, description, [failure(column=missing[0], reason="column missing")], metadata=meta)
    failures, checked, largest = [], 0, {}
    for label, ident, rows in series_frames(_bars_of(frame, interval), None):
        bars = rows.loc[rows["close"].gt(0)].drop_duplicates("event_time").sort_values("event_time")
        log_close = np.log(bars["close"].astype("float64"))
        ret = log_close.diff()
        adjacent = bars["event_time"].diff().eq(step)
        ret = ret.where(adjacent)
        checked += int(ret.notna().sum())
        if ret.notna().any():
            largest[label] = round(float(ret.abs().max()), 6)
        flagged = ret.abs() > max_abs_log_return
        z = pd.Series(np.nan, index=ret.index)
        if max_robust_z is not None and ret.notna().sum() >= 3:
            mad = float((ret - ret.median()).abs().median())
            if mad > 0:
                z = (ret - ret.median()) / (1.4826 * mad)
                flagged |= z.abs() > max_robust_z
        prev_close = bars["close"].shift(1)
        for pos in np.flatnonzero(flagged.fillna(False).to_numpy()):
            r, row = float(ret.iloc[pos]), bars.iloc[pos]
            failures.append(failure(
                symbol=ident.get("symbol"), event_time=row["event_time"], column="close", value=row["close"],
                reason=f"{interval} log return {r:+.4f} from close {prev_close.iloc[pos]} exceeds the bound",
                log_return=round(r, 6), robust_z=None if pd.isna(z.iloc[pos]) else round(float(z.iloc[pos]), 2),
                venue_symbol=ident.get("venue_symbol")))
    failures.sort(key=lambda f: (str(f["symbol"]), str(f["event_time"])))
    return make_outcome(name, description, failures,
                        metadata={**meta, "returns_checked": checked, "largest_abs_log_return": largest})
