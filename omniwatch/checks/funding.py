"""Checks of perpetual funding rates: plausible magnitude and settlement coverage.

Binance USD-M caps funding far below 5 % per 8 h, so a larger absolute rate is a unit or parsing
error (a percentage read as a fraction) that would swamp any carry signal. Coverage is different:
a venue or a sample may simply lack a span (the bundled sample has no SOL funding from
2024-12-04 to 2025-02-01). Such a span must be reported as missing, never filled and never
blocking, so the coverage check has severity WARN.
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
    missing_columns,
    row_failures,
    series_frames,
    to_timedelta,
    utc,
)
from omniwatch.checks.outcome import CheckOutcome, Severity, failure, iso, make_outcome

SETTLEMENT_STEP = pd.Timedelta(hours=8)


def check_funding_rate_bounds(frame: pd.DataFrame, *, max_abs_funding_rate: float = 0.05) -> CheckOutcome:
    """Every ``funding_rate`` is present and ``abs(rate) <= max_abs_funding_rate`` (a fraction
    per settlement, 0.05 = 5 %). Each failure names the symbol, settlement time and rate."""
    name = "within_bounds"
    description = f"every funding rate is present and within ±{max_abs_funding_rate} per settlement"
    meta: dict[str, Any] = {"max_abs_funding_rate": max_abs_funding_rate, "rows_checked": len(frame)}
    if missing := missing_columns(frame, ["funding_rate"]):
        return make_outcome(name, description, [failure(column=missing[0], reason="column missing")], metadata=meta)
    data = frame.reset_index(drop=True)
    rate = pd.to_numeric(data["funding_rate"], errors="coerce").astype("float64")
    mask = (rate.isna() | (rate.abs() > max_abs_funding_rate)).to_numpy(dtype=bool)

    def reason(row: pd.Series) -> str:
        if pd.isna(row["funding_rate"]):
            return "funding_rate is null"
        return f"|funding_rate| {abs(float(row['funding_rate']))} exceeds {max_abs_funding_rate}"

    count, failures = row_failures(data, mask, "funding_rate", reason, extra_columns=["venue_symbol"])
    observed = float(rate.abs().max()) if rate.notna().any() else None
    return make_outcome(name, description, failures, failed_count=count,
                        metadata={**meta, "max_abs_observed": observed})


def check_funding_coverage(
    frame: pd.DataFrame,
    window_start: TimeLike,
    window_end: TimeLike,
    now: TimeLike,
    *,
    symbols: Sequence[str] | None = None,
    settlement_step: timedelta | str | float = SETTLEMENT_STEP,
    match_tolerance: timedelta | str | float = "1min",
) -> CheckOutcome:
    """Report, per series, the settlement windows (every 8 h from 00:00 UTC) in
    ``[window_start, min(window_end, now)]`` with no funding row, as contiguous ranges.

    Severity WARN: missing settlements are listed (``failed_count`` = missing settlements) but
    never block. A row counts for the settlement nearest its ``event_time`` when within
    ``match_tolerance`` (Binance stamps settlements a few ms late); off-grid rows (venues that
    settle more often) are ignored, so extra settlements never hide a gap.
    """
    name = "cover_settlements"
    step, tolerance = to_timedelta(settlement_step), to_timedelta(match_tolerance)
    description = f"each symbol has a funding row for every {step} settlement in the window (report-only)"
    start, reference = utc(window_start), min(utc(window_end), utc(now))
    end_inclusive = reference if reference < utc(window_end) else reference - pd.Timedelta(1, "ns")
    expected = expected_grid(start, end_inclusive, step)
    meta: dict[str, Any] = {"window_start": iso(start), "reference": iso(reference),
                            "expected_per_series": len(expected), "settlement_hours": step / pd.Timedelta(hours=1),
                            "rows_checked": len(frame)}
    if missing := missing_columns(frame, ["event_time"]):
        return make_outcome(name, description, [failure(column=missing[0], reason="column missing")],
                            severity=Severity.WARN, metadata=meta)
    series = series_frames(frame, symbols)
    if not series and len(expected):
        reason = f"no funding rows; {len(expected)} settlements per symbol expected from {iso(start)}"
        return make_outcome(name, description, [failure(column="event_time", reason=reason)],
                            failed_count=len(expected), severity=Severity.WARN, metadata=meta)
    failures, missing_by_series, total = [], {}, 0
    for label, ident, rows in series:
        times = pd.DatetimeIndex(rows["event_time"].dropna())
        nearest = times.round(step) if len(times) else times
        on_grid = nearest[np.abs((times - nearest).as_unit("ns").asi8) <= tolerance.value] if len(times) else times
        absent = expected.difference(pd.DatetimeIndex(on_grid.unique()))
        missing_by_series[label] = len(absent)
        total += len(absent)
        for first, last, count in compress_ranges(absent, step):
            failures.append(failure(
                symbol=ident.get("symbol"), event_time=first, column="event_time", value=count,
                reason=f"{count} funding settlements missing from {iso(first)} to {iso(last)}",
                end_time=last, venue_symbol=ident.get("venue_symbol")))
    return make_outcome(name, description, failures, failed_count=total, severity=Severity.WARN,
                        metadata={**meta, "missing_by_series": missing_by_series})
