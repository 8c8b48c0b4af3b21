"""Pandera schema checks: clean and empty canonical frames pass, corrupt ones name what failed."""

from __future__ import annotations

import pandas as pd
import pytest

from omniwatch import frames
from omniwatch.checks.schemas import check_schema

from . import builders as b

CLEAN = {
    "market_bars": b.market_bars, "funding_rates": b.funding_rates, "onchain_signals": b.onchain_signals,
    "trades_ticks": b.trades_ticks, "orderbook_l2": b.orderbook_l2,
}
COLUMNS = {
    "market_bars": frames.MARKET_BAR_COLUMNS, "funding_rates": frames.FUNDING_COLUMNS,
    "onchain_signals": frames.ONCHAIN_COLUMNS, "trades_ticks": frames.TRADE_COLUMNS,
    "orderbook_l2": frames.ORDERBOOK_COLUMNS,
}


@pytest.mark.parametrize("asset", sorted(CLEAN))
def test_clean_frames_pass(asset):
    result = check_schema(CLEAN[asset](), asset)
    assert result.passed, result.failures
    assert result.name == "match_schema"


@pytest.mark.parametrize("asset", sorted(COLUMNS))
def test_empty_canonical_frames_pass_with_zero_rows(asset):
    result = check_schema(frames.empty_frame(COLUMNS[asset]), asset)
    assert result.passed, result.failures
    assert result.metadata["rows_checked"] == 0


def test_object_dtype_strings_pass_like_pandas_str():
    bars = b.market_bars().astype({"symbol": object, "venue": object, "source": object})
    assert check_schema(bars, "market_bars").passed


def test_unknown_symbol_is_named_with_its_row():
    bars = b.market_bars()
    bars.loc[b.row_index(bars, "ETH", "2024-01-01T03:00Z"), "symbol"] = "XRP"
    result = check_schema(bars, "market_bars")
    assert not result.passed
    [hit] = [f for f in result.failures if f["column"] == "symbol"]
    assert hit["value"] == "XRP" and hit["symbol"] == "XRP" and hit["event_time"] == "2024-01-01T03:00:00+00:00"


def test_naive_time_column_fails_naming_column_and_dtype():
    bars = b.market_bars()
    bars["available_time"] = bars["available_time"].dt.tz_localize(None)
    result = check_schema(bars, "market_bars")
    [hit] = result.failures
    assert hit["column"] == "available_time" and "datetime64" in hit["value"] and "UTC" in hit["reason"]


def test_non_utc_zone_fails():
    bars = b.market_bars()
    bars["event_time"] = bars["event_time"].dt.tz_convert("Europe/Berlin")
    result = check_schema(bars, "market_bars")
    assert [f["column"] for f in result.failures] == ["event_time"]


def test_any_time_resolution_passes():
    bars = b.market_bars()
    bars["event_time"] = bars["event_time"].dt.as_unit("ns")
    bars["available_time"] = bars["available_time"].dt.as_unit("s")
    assert check_schema(bars, "market_bars").passed


def test_integer_volume_and_unknown_interval_fail():
    bars = b.market_bars()
    bars["volume"] = 10
    bars.loc[b.row_index(bars, "SOL", "2024-01-01T02:00Z"), "interval"] = "1H"
    result = check_schema(bars, "market_bars")
    by_column = {f["column"]: f for f in result.failures}
    assert by_column["volume"]["value"] == "int64" and "float64" in by_column["volume"]["reason"]
    assert by_column["interval"]["symbol"] == "SOL" and by_column["interval"]["value"] == "1H"
    assert by_column["interval"]["event_time"] == "2024-01-01T02:00:00+00:00"


def test_missing_and_extra_columns_fail():
    bars = b.market_bars().drop(columns=["source"]).assign(note="x")
    result = check_schema(bars, "market_bars")
    reasons = {f["column"]: f["reason"] for f in result.failures}
    assert reasons == {"source": "required column is missing", "note": "column is not in the canonical schema"}


def test_null_symbol_fails_but_null_close_is_left_to_the_null_check():
    bars = b.market_bars()
    bars.loc[b.row_index(bars, "BTC", "2024-01-01T01:00Z"), "close"] = float("nan")
    assert check_schema(bars, "market_bars").passed
    bars.loc[b.row_index(bars, "BTC", "2024-01-01T02:00Z"), "venue"] = None
    result = check_schema(bars, "market_bars")
    assert [(f["column"], f["symbol"], f["event_time"]) for f in result.failures] == [
        ("venue", "BTC", "2024-01-01T02:00:00+00:00")]


def test_book_side_must_be_bid_or_ask():
    book = b.orderbook_l2()
    book.loc[0, "side"] = "buy"
    result = check_schema(book, "orderbook_l2")
    assert [(f["column"], f["value"]) for f in result.failures] == [("side", "buy")]
    assert isinstance(pd.Timestamp(result.failures[0]["event_time"]), pd.Timestamp)
