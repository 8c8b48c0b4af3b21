"""Batched, idempotent upserts on natural keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from omniwatch import frames
from omniwatch.resources.warehouse import WarehouseResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_frame


def _bars(n: int, close: float = 100.0) -> pd.DataFrame:
    t = pd.date_range("2024-04-16T01:00Z", periods=n, freq="h")
    return pd.DataFrame({
        "symbol": "BTC", "venue": "binance", "venue_symbol": "BTCUSDT", "quote": "USDT",
        "interval": "1h", "event_time": t, "available_time": t + pd.Timedelta(hours=1),
        "open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 5.0,
        "source": "replay",
    })[frames.MARKET_BAR_COLUMNS]


def test_rewriting_a_window_never_duplicates_and_updates_values(warehouse_url):
    wh = WarehouseResource(database_url=warehouse_url)
    assert wh.upsert("market_bars", _bars(48), frames.MARKET_BAR_KEY) == 48
    assert wh.upsert("market_bars", _bars(48, close=101.0), frames.MARKET_BAR_KEY) == 48
    assert wh.count("market_bars") == 48
    stored = wh.read_window("market_bars", pd.Timestamp("2024-04-16", tz="UTC"), pd.Timestamp("2024-04-19", tz="UTC"))
    assert (stored["close"] == 101.0).all()
    # available_time survives the round trip as UTC, one hour after the open.
    assert (stored["available_time"] - stored["event_time"] == pd.Timedelta(hours=1)).all()
    assert str(stored["event_time"].dt.tz) == "UTC"


def test_upsert_is_set_based_not_one_statement_per_row(warehouse_url):
    engine = get_engine(warehouse_url)
    statements: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            upsert_frame(conn, tables.market_bars, _bars(5000), frames.MARKET_BAR_KEY)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert 1 <= len(statements) <= 5
    assert all("ON CONFLICT" in s.upper() for s in statements)


def test_duplicate_keys_in_a_batch_are_refused_and_nothing_is_written(warehouse_url):
    wh = WarehouseResource(database_url=warehouse_url)
    bad = pd.concat([_bars(3), _bars(3).iloc[[1]]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate natural key"):
        wh.upsert("market_bars", bad, frames.MARKET_BAR_KEY)
    assert wh.count("market_bars") == 0


def test_partial_failure_rolls_back_the_whole_batch(warehouse_url):
    """A batch with a NULL in a NOT NULL column leaves the stored rows untouched."""
    wh = WarehouseResource(database_url=warehouse_url)
    wh.upsert("market_bars", _bars(10), frames.MARKET_BAR_KEY)
    bad = _bars(10, close=200.0)
    bad.loc[7, "close"] = float("nan")
    with pytest.raises(IntegrityError):  # NOT NULL violated
        wh.upsert("market_bars", bad, frames.MARKET_BAR_KEY)
    with get_engine(warehouse_url).connect() as conn:
        closes = conn.execute(select(tables.market_bars.c.close)).scalars().all()
    assert closes == [100.0] * 10


def test_audit_rows_are_idempotent_per_run_and_window(warehouse_url):
    from omniwatch.checks.outcome import make_outcome

    wh = WarehouseResource(database_url=warehouse_url)
    outcome = make_outcome("market_bars_have_no_duplicate_keys", "dups",
                           [{"symbol": "BTC", "reason": "dup"}])
    start, end = pd.Timestamp("2024-04-16", tz="UTC"), pd.Timestamp("2024-04-17", tz="UTC")
    for _ in range(2):
        wh.record_checks("market_bars", [outcome], start.to_pydatetime(), end.to_pydatetime(), "run-1")
    assert wh.count("data_quality_audit") == 1


def test_json_columns_store_nan_and_numpy_as_json(warehouse_url):
    """PostgreSQL's JSON refuses NaN: JSON cells go through the one sanitiser on the way in."""
    import numpy as np

    frame = pd.DataFrame({
        "source": ["edgar"], "source_id": ["0001-1"], "track": ["vc"], "event_type": ["D"],
        "event_time": [pd.Timestamp("2024-01-01", tz="UTC")], "available_time": [pd.Timestamp("2024-01-02", tz="UTC")],
        "payload": [{"amount": float("nan"), "n": np.int64(3), "when": pd.Timestamp("2024-01-01", tz="UTC"),
                     "items": np.array(["3C", "06b"])}],
    })
    with get_engine(warehouse_url).begin() as conn:
        assert upsert_frame(conn, tables.events, frame, ["source", "source_id"]) == 1
    with get_engine(warehouse_url).connect() as conn:
        stored = conn.execute(select(tables.events.c.payload)).scalar_one()
    assert stored == {"amount": None, "n": 3, "when": "2024-01-01T00:00:00+00:00", "items": ["3C", "06b"]}
