"""Trade and order-book checks, including empty batches (the replay sample holds none)."""

from __future__ import annotations

import pandas as pd
import pytest

from omniwatch import frames
from omniwatch.checks.book import check_book_not_crossed, check_book_positive, check_trades_positive
from omniwatch.checks.generic import check_no_duplicate_keys
from omniwatch.checks.registry import run_checks

from . import builders as b

WINDOW = ("2024-01-01T00:00Z", "2024-01-02T00:00Z", "2024-01-03T00:00Z")


@pytest.mark.parametrize(("asset", "columns"), [("trades_ticks", frames.TRADE_COLUMNS),
                                                 ("orderbook_l2", frames.ORDERBOOK_COLUMNS)])
def test_every_check_passes_on_an_empty_batch(asset, columns):
    outcomes = run_checks(asset, frames.empty_frame(columns), *WINDOW)
    assert outcomes and all(o.passed for o in outcomes), [o.failures for o in outcomes if not o.passed]
    assert all(o.metadata["rows_checked"] == 0 for o in outcomes)


def test_clean_trades_and_books_pass():
    assert check_trades_positive(b.trades_ticks()).passed
    assert check_book_positive(b.orderbook_l2()).passed
    assert check_book_not_crossed(b.orderbook_l2()).passed


def test_non_positive_trade_price_and_size_are_named():
    trades = b.trades_ticks()
    trades.loc[1, "price"] = 0.0
    trades.loc[2, "size"] = -0.5
    result = check_trades_positive(trades)
    assert [(f["column"], f["event_time"], f["value"]) for f in result.failures] == [
        ("price", "2024-01-01T00:00:01+00:00", 0.0), ("size", "2024-01-01T00:00:02+00:00", -0.5)]


def test_duplicate_trade_id_is_named():
    trades = b.trades_ticks()
    trades.loc[3, "trade_id"] = trades.loc[2, "trade_id"]
    result = check_no_duplicate_keys(trades, "trades_ticks", frames.TRADE_KEY)
    assert result.failed_count == 2 and {f["value"] for f in result.failures} == {"102"}


def test_crossed_book_is_named_with_both_prices():
    book = b.orderbook_l2()
    second = book["event_time"] == b.ts("2024-01-01T00:01Z")
    book.loc[second & (book["side"] == "bid") & (book["level"] == 0), "price"] = 42_005.0
    result = check_book_not_crossed(book)
    assert not result.passed and result.failed_count == 1
    [hit] = result.failures
    assert (hit["symbol"], hit["event_time"], hit["value"], hit["best_ask"]) == (
        "BTC", "2024-01-01T00:01:00+00:00", 42_005.0, 42_001.0)
    assert result.metadata["snapshots_checked"] == 2


def test_locked_book_counts_as_crossed():
    book = b.orderbook_l2(snapshots=1)
    book.loc[(book["side"] == "ask") & (book["level"] == 0), "price"] = 41_999.0
    assert not check_book_not_crossed(book).passed


def test_negative_book_size_is_named():
    book = b.orderbook_l2()
    book.loc[4, "size"] = -1.0
    result = check_book_positive(book)
    assert [(f["column"], f["value"]) for f in result.failures] == [("size", -1.0)]
    assert pd.Timestamp(result.failures[0]["event_time"]) == book.loc[4, "event_time"]
