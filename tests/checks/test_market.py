"""Market-bar checks: nulls, duplicate keys, hourly gaps, freshness and outlier returns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from omniwatch import frames
from omniwatch.checks.generic import check_no_duplicate_keys, check_required_not_null
from omniwatch.checks.market import check_freshness, check_hourly_gaps, check_outlier_returns
from omniwatch.checks.registry import MARKET_BAR_REQUIRED

from . import builders as b

START, END = "2024-01-01T00:00Z", "2024-01-02T00:00Z"
AFTER = "2024-01-03T00:00Z"  # a "now" after the window: the whole window is expected


def day_of_bars(symbols=b.SYMBOLS) -> pd.DataFrame:
    return b.market_bars(symbols, hours=24)


# --- nulls -------------------------------------------------------------------------------------

def test_nan_close_is_named_by_symbol_and_time():
    bars = day_of_bars()
    bars.loc[b.row_index(bars, "ETH", "2024-01-01T05:00Z"), "close"] = np.nan
    result = check_required_not_null(bars, "market_bars", MARKET_BAR_REQUIRED)
    assert not result.passed and result.failed_count == 1
    assert result.failures[0] == {"symbol": "ETH", "event_time": "2024-01-01T05:00:00+00:00",
                                       "column": "close", "value": None, "reason": "close is null"}
    assert result.metadata["null_counts"] == {"close": 1}


def test_clean_bars_have_no_nulls_and_null_quote_is_allowed():
    bars = day_of_bars()
    bars["quote"] = None
    assert check_required_not_null(bars, "market_bars", MARKET_BAR_REQUIRED).passed


# --- duplicate keys ----------------------------------------------------------------------------

def test_duplicated_timestamps_are_listed():
    bars = day_of_bars()
    dup = bars.loc[[b.row_index(bars, "SOL", "2024-01-01T07:00Z")]]
    bars = pd.concat([bars, dup], ignore_index=True)
    result = check_no_duplicate_keys(bars, "market_bars", frames.MARKET_BAR_KEY)
    assert not result.passed
    assert result.failed_count == 2 and result.metadata["duplicated_keys"] == 1
    assert {(f["symbol"], f["event_time"]) for f in result.failures} == {("SOL", "2024-01-01T07:00:00+00:00")}
    assert "occurs 2 times" in result.failures[0]["reason"]


def test_same_hour_on_two_venues_is_not_a_duplicate():
    bars = day_of_bars(("BTC",))
    other = bars.assign(venue="coinbase", venue_symbol="BTC-USD", quote="USD")
    assert check_no_duplicate_keys(pd.concat([bars, other]), "market_bars", frames.MARKET_BAR_KEY).passed


# --- hourly gaps -------------------------------------------------------------------------------

def test_complete_day_passes():
    result = check_hourly_gaps(day_of_bars(), START, END, AFTER)
    assert result.passed, result.failures
    assert result.metadata["expected_per_series"] == 24


def test_missing_span_is_reported_as_a_range():
    bars = day_of_bars()
    hole = (bars["symbol"] == "BTC") & bars["event_time"].between(b.ts("2024-01-01T10:00Z"), b.ts("2024-01-01T13:00Z"))
    result = check_hourly_gaps(bars.loc[~hole], START, END, AFTER)
    assert not result.passed and result.failed_count == 4
    [gap] = result.failures
    assert gap["symbol"] == "BTC" and gap["event_time"] == "2024-01-01T10:00:00+00:00"
    assert gap["end_time"] == "2024-01-01T13:00:00+00:00" and gap["value"] == 4
    assert result.metadata["gap_ratio_by_series"] == {"BTC": round(4 / 24, 6), "ETH": 0.0, "SOL": 0.0}


def test_gap_below_the_ratio_passes_but_is_still_reported_in_metadata():
    bars = day_of_bars()
    bars = bars.drop(index=b.row_index(bars, "ETH", "2024-01-01T04:00Z"))
    result = check_hourly_gaps(bars, START, END, AFTER, max_gap_ratio=0.05)
    assert result.passed
    assert result.metadata["missing_by_series"]["ETH"] == 1
    assert result.metadata["tolerated_missing_ranges"] == ["ETH 2024-01-01T04:00:00+00:00..2024-01-01T04:00:00+00:00"]
    assert not check_hourly_gaps(bars, START, END, AFTER, max_gap_ratio=0.02).passed


def test_only_closed_bars_are_expected_when_now_is_inside_the_window():
    bars = b.market_bars(hours=6)  # 00:00 .. 05:00, the last one closes at 06:00
    assert check_hourly_gaps(bars, START, END, "2024-01-01T06:30Z").passed
    late = check_hourly_gaps(bars, START, END, "2024-01-01T08:00Z")
    assert not late.passed and late.metadata["expected_per_series"] == 8
    assert b.named(late.failures, "SOL", "2024-01-01T06:00Z", "event_time")


def test_empty_frame_fails_with_a_clear_reason():
    result = check_hourly_gaps(frames.empty_frame(frames.MARKET_BAR_COLUMNS), START, END, AFTER)
    assert not result.passed and result.failed_count == 24
    assert "no 1h bars in the batch" in result.failures[0]["reason"]


def test_expected_symbol_without_rows_fails():
    result = check_hourly_gaps(day_of_bars(("BTC", "ETH")), START, END, AFTER, symbols=b.SYMBOLS)
    assert not result.passed and result.failed_count == 24
    assert [(f["symbol"], f["value"]) for f in result.failures] == [("SOL", 24)]


def test_window_in_the_future_expects_nothing():
    result = check_hourly_gaps(frames.empty_frame(frames.MARKET_BAR_COLUMNS), START, END, "2023-12-31T00:00Z")
    assert result.passed and result.metadata["expected_per_series"] == 0


# --- freshness ---------------------------------------------------------------------------------

def test_fresh_when_the_newest_bar_closed_at_the_window_end():
    assert check_freshness(day_of_bars(), START, END, AFTER).passed


def test_stale_symbol_is_named_with_its_lag():
    bars = day_of_bars()
    stale = (bars["symbol"] == "SOL") & (bars["event_time"] >= b.ts("2024-01-01T18:00Z"))
    result = check_freshness(bars.loc[~stale], START, END, AFTER, max_lag="2h")
    assert not result.passed
    [hit] = result.failures
    assert hit["symbol"] == "SOL" and hit["event_time"] == "2024-01-01T17:00:00+00:00"
    assert hit["column"] == "available_time" and hit["lag_hours"] == 6.0
    assert result.metadata["lag_hours_by_series"] == {"BTC": 0.0, "ETH": 0.0, "SOL": 6.0}


def test_reference_is_now_while_the_window_is_open():
    bars = b.market_bars(hours=6)  # newest available at 06:00
    assert check_freshness(bars, START, END, "2024-01-01T07:30Z", max_lag="2h").passed
    assert not check_freshness(bars, START, END, "2024-01-01T09:00Z", max_lag="2h").passed


def test_empty_frame_is_not_fresh():
    result = check_freshness(frames.empty_frame(frames.MARKET_BAR_COLUMNS), START, END, AFTER)
    assert not result.passed and "batch is empty" in result.failures[0]["reason"]


def test_missing_expected_symbol_is_not_fresh():
    result = check_freshness(day_of_bars(("BTC",)), START, END, AFTER, symbols=["BTC", "ETH"])
    assert [f["symbol"] for f in result.failures] == ["ETH"]


# --- outlier returns ---------------------------------------------------------------------------

def test_forty_percent_jump_is_named():
    bars = day_of_bars()
    i = b.row_index(bars, "ETH", "2024-01-01T12:00Z")
    bars.loc[i, ["open", "high", "low", "close"]] = bars.loc[i, ["open", "high", "low", "close"]] * 1.4
    result = check_outlier_returns(bars)
    assert not result.passed
    assert b.named(result.failures, "ETH", "2024-01-01T12:00Z", "close")
    assert {f["symbol"] for f in result.failures} == {"ETH"}
    up = next(f for f in result.failures if f["event_time"] == "2024-01-01T12:00:00+00:00")
    assert abs(up["log_return"] - np.log(1.4 * 1.001)) < 1e-6


def test_clean_bars_have_no_outliers():
    result = check_outlier_returns(day_of_bars())
    assert result.passed and result.metadata["returns_checked"] == 3 * 23


def test_a_gap_is_not_a_jump():
    bars = day_of_bars(("BTC",))
    late = bars["event_time"] >= b.ts("2024-01-01T12:00Z")
    bars.loc[late, ["open", "high", "low", "close"]] *= 1.5
    assert not check_outlier_returns(bars).passed
    hole = bars["event_time"].between(b.ts("2024-01-01T10:00Z"), b.ts("2024-01-01T11:00Z"))
    assert check_outlier_returns(bars.loc[~hole]).passed


def test_robust_z_catches_a_move_below_the_absolute_bound():
    bars = day_of_bars(("BTC",))
    bars["close"] *= 1 + 0.002 * np.sin(np.arange(len(bars)))  # hourly returns of a few 0.1 %
    bars.loc[b.row_index(bars, "BTC", "2024-01-01T09:00Z"):, "close"] *= 1.05  # one +5 % step
    assert check_outlier_returns(bars).passed
    result = check_outlier_returns(bars, max_robust_z=10.0)
    assert [f["event_time"] for f in result.failures] == ["2024-01-01T09:00:00+00:00"]


def test_checks_name_rows_correctly_when_the_index_is_not_unique():
    bars = day_of_bars()
    i = b.row_index(bars, "SOL", "2024-01-01T15:00Z")
    bars.loc[i, "close"] = np.nan
    bars.loc[i + 1, ["open", "high", "low", "close"]] *= 1.4
    bars.index = [7] * len(bars)
    nulls = check_required_not_null(bars, "market_bars", MARKET_BAR_REQUIRED)
    assert b.named(nulls.failures, "SOL", "2024-01-01T15:00Z", "close")
    jumps = check_outlier_returns(bars)
    assert [(f["symbol"], f["event_time"]) for f in jumps.failures] == [("SOL", "2024-01-01T17:00:00+00:00")]
    assert check_freshness(bars, START, END, AFTER).passed
