"""Checks of trade ticks and level-2 order books: positive prices and sizes, uncrossed books.

A trade or a resting order with a non-positive price or size is a parser error. A crossed book
(best bid >= best ask at one instant) cannot exist on a live venue; it means sides were swapped
or snapshots mixed, and it would corrupt spreads, mid prices and slippage estimates. The replay
sample holds no history for these tables, so every check passes on an empty batch and says
``rows_checked`` 0.
"""

from __future__ import annotations

import pandas as pd

from omniwatch.checks.common import missing_columns
from omniwatch.checks.generic import check_values_signed
from omniwatch.checks.outcome import CheckOutcome, failure, make_outcome
from omniwatch.checks.schemas import BOOK_SIDES

BOOK_INSTANT = ["venue", "venue_symbol", "event_time"]


def check_trades_positive(frame: pd.DataFrame) -> CheckOutcome:
    """Every trade has price > 0 and size > 0 (nulls fail)."""
    return check_values_signed(
        frame, "have_positive_price_and_size", "every trade has price > 0 and size > 0",
        ["price", "size"], strictly_positive=True,
    )


def check_book_positive(frame: pd.DataFrame) -> CheckOutcome:
    """Every book level has price > 0 and size > 0 (nulls fail)."""
    return check_values_signed(
        frame, "have_positive_price_and_size", "every book level has price > 0 and size > 0",
        ["price", "size"], strictly_positive=True,
    )


def check_book_not_crossed(frame: pd.DataFrame) -> CheckOutcome:
    """At each (venue, venue_symbol, event_time) the best bid is strictly below the best ask.
    Snapshots with only one side are not judged. Each failure names the symbol, the instant and
    both prices."""
    name = "is_not_crossed"
    description = "at every book snapshot the best bid is below the best ask"
    bid_side, ask_side = BOOK_SIDES
    if missing := missing_columns(frame, [*BOOK_INSTANT, "side", "price"]):
        failures = [failure(column=c, reason="column missing") for c in missing]
        return make_outcome(name, description, failures, metadata={"rows_checked": len(frame)})
    data = frame.assign(price=pd.to_numeric(frame["price"], errors="coerce").astype("float64"))
    best_bid = data.loc[data["side"] == bid_side].groupby(BOOK_INSTANT, dropna=False)["price"].max()
    best_ask = data.loc[data["side"] == ask_side].groupby(BOOK_INSTANT, dropna=False)["price"].min()
    tops = pd.concat([best_bid.rename("best_bid"), best_ask.rename("best_ask")], axis=1, join="inner")
    crossed = tops.loc[tops["best_bid"] >= tops["best_ask"]].reset_index()
    symbols = data.drop_duplicates(BOOK_INSTANT).set_index(BOOK_INSTANT)["symbol"] if "symbol" in data else None
    crossed = crossed.sort_values(["venue_symbol", "event_time"])
    failures = []
    for row in crossed.head(100).itertuples(index=False):
        symbol = symbols.get((row.venue, row.venue_symbol, row.event_time)) if symbols is not None else None
        failures.append(failure(
            symbol=symbol, event_time=row.event_time, column="price", value=row.best_bid,
            reason=f"best bid {row.best_bid} >= best ask {row.best_ask}",
            best_ask=row.best_ask, venue_symbol=row.venue_symbol))
    return make_outcome(name, description, failures, failed_count=len(crossed),
                        metadata={"rows_checked": len(frame), "snapshots_checked": len(tops)})
